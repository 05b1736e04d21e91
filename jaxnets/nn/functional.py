"""``torch.nn.functional`` for jaxnets: the same names and arguments, channels-last input::

    from jaxnets.nn import functional as F
    y = F.max_pool2d(x, 3, stride=2, padding=1, ceil_mode=True)   # x: (N, H, W, C)

Images are ``(N, H, W, C)`` (unbatched ``(H, W, C)``) and sequences ``(N, L, C)``, where torch
has ``(N, C, H, W)`` and ``(N, C, L)``. A ``dim`` argument (``softmax``, ``log_softmax``,
``flatten``) is torch's dim applied to the array as given. Convolution weights are
channels-last kernels (``(kH, kW, in/groups, out)``, the layout of ``Conv2d.kernel``);
``linear`` takes torch's ``(out, in)`` weight. Functions with randomness (``dropout``,
``dropout2d``) take ``rngs=`` (an ``nnx.Rngs`` or a key); ``batch_norm`` returns the running
statistics it would update in place when asked (``return_running_stats=True``).
"""

from jaxnets.nn.activation import (
    elu,
    gelu,
    leaky_relu,
    log_softmax,
    relu,
    sigmoid,
    silu,
    softmax,
    tanh,
)
from jaxnets.nn.conv import conv1d, conv2d
from jaxnets.nn.dropout import dropout, dropout2d
from jaxnets.nn.embedding import embedding
from jaxnets.nn.flatten import flatten
from jaxnets.nn.linear import linear
from jaxnets.nn.normalization import batch_norm, layer_norm
from jaxnets.nn.pooling import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    avg_pool2d,
    max_pool2d,
)

__all__ = [
    "adaptive_avg_pool2d",
    "adaptive_max_pool2d",
    "avg_pool2d",
    "batch_norm",
    "conv1d",
    "conv2d",
    "dropout",
    "dropout2d",
    "elu",
    "embedding",
    "flatten",
    "gelu",
    "layer_norm",
    "leaky_relu",
    "linear",
    "log_softmax",
    "max_pool2d",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
]
