"""config.hidden_act names → brunoflow composites (transformers' ACT2FN, for bf Nodes)."""

from brunoflow import func as F


def _silu(x):
    return x * F.sigmoid(x)


BF_ACT2FN = {
    "gelu": F.gelu,  # exact erf form, as torch's nn.GELU()
    "gelu_new": lambda x: F.gelu(x, approximate=True),
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate=True),
    "relu": F.relu,
    "tanh": F.tanh,
    "sigmoid": F.sigmoid,
    "silu": _silu,
    "swish": _silu,
    "linear": lambda x: x,
}


def get_activation(name):
    if callable(name):
        return name
    if name not in BF_ACT2FN:
        raise ValueError(f"hidden_act {name!r} has no BF version; supported: {sorted(BF_ACT2FN)}")
    return BF_ACT2FN[name]
