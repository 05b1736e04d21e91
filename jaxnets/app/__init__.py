"""The ``jaxnets`` command and what it runs: training runs of both frameworks, benchmarks,
plots and host tuning. The only place that imports both jaxnets and torchref (lazily, so
``jaxnets list`` answers at once); nothing in the library imports it."""
