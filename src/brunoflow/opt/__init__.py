"""bf.opt: optimizers that update Parameters from the `grad` backprop leaves on them."""

from .adam import Adam
from .optimizer import Optimizer
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam"]
