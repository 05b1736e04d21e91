#!/usr/bin/env bash
# The GPU figures of docs/performance.md, in stages; run from the repository root on a CUDA machine
# with jax[cuda], flax, optax and a CUDA build of torch installed:
#
#   benchmarks/gpu.sh tests  OUT        # the parity suite with JAX on the GPU (torch on the CPU)
#   benchmarks/gpu.sh bench  OUT        # jaxnets bench --device gpu: every model, then one
#                                       # MNIST epoch (937 steps of 64) of the MNIST MLP
#   benchmarks/gpu.sh mnist  OUT DATA   # examples/mnist.py on the GPU over seeds, float32 and
#                                       # float64, plus each framework on the CPU for seed 0
#
# Every log and JSON file lands in OUT. PYTHON (default python3) picks the interpreter.
set -uo pipefail
stage=${1:?stage: tests, bench or mnist}
out=${2:?output folder}
mkdir -p "$out"
py=${PYTHON:-python3}
export PYTHONPATH=${PYTHONPATH:-.} PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false

case $stage in
tests)
    nvidia-smi -L
    $py -c 'import jax, flax, optax, torch; print("jax", jax.__version__, jax.devices(),
"flax", flax.__version__, "optax", optax.__version__, "torch", torch.__version__)'
    # xdist when present: the suite is independent per test (each seeds its own draws)
    par=$($py -c 'import xdist' 2>/dev/null && echo "-n 8")
    $py -m pytest -q $par -p no:benchmark -p no:cov --durations=15 --junitxml="$out/junit-gpu.xml" \
        parity_tests 2>&1 | tee "$out/tests-gpu.log"
    ;;
bench)
    $py -m jaxnets.app.cli bench --device gpu --no-torch-compile --repeats 5 \
        --json "$out/bench-gpu.json" 2>&1 | tee "$out/bench-gpu.log"
    $py -m jaxnets.app.cli bench --device gpu --model custom_neural_network --batch-size 64 \
        --steps 937 --repeats 5 --no-inference \
        --json "$out/bench-gpu-mnist-epoch.json" 2>&1 | tee "$out/bench-gpu-mnist-epoch.log"
    ;;
mnist)
    data=${3:?MNIST folder}
    log="$out/mnist.log"
    : >"$log"
    for seed in 0 1 2 3 4; do
        $py examples/mnist.py --device gpu --data-dir "$data" --seed "$seed" --plot '' \
            --no-progress --results "$out/mnist-f32-s$seed.json" 2>&1 | tee -a "$log"
    done
    $py examples/mnist.py --device gpu --dtype float64 --data-dir "$data" --seed 0 --plot '' \
        --no-progress --results "$out/mnist-f64-s0.json" 2>&1 | tee -a "$log"
    $py examples/mnist.py --device cpu --data-dir "$data" --seed 0 --plot '' \
        --no-progress --results "$out/mnist-f32-s0-cpu.json" 2>&1 | tee -a "$log"
    ;;
*)
    echo "unknown stage $stage (tests, bench or mnist)" >&2
    exit 2
    ;;
esac
