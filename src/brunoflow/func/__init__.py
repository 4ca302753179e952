"""bf.func: every differentiable function, primitives and composites, under one roof."""

from ..ops import (abs, add, argmax, argmin, broadcast_to, concat, div, einsum, erf, exp, expand_dims, gelu,
                   getitem, log, lookup, matmul, maximum, minimum, mul, neg, pad, permute, pick, pow, reduce_max,
                   reduce_mean,
                   reduce_min, reduce_sum, relu, reshape, sigmoid, sqrt, squeeze, stack, sub, swapaxes, tanh,
                   transpose, where)
from .layers import dropout, embedding, layer_norm
from .losses import binary_cross_entropy_with_logits, cross_entropy, mse_loss, nll_loss
from .reductions import log_softmax, reduce_logsumexp, softmax
