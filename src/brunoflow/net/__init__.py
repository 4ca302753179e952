"""bf.net: torch-style modules whose calls tag every Node with the module's dotted path."""

from .container import ModuleList, Sequential
from .dropout import Dropout, using_dropout_key
from .embedding import Embedding
from .layernorm import LayerNorm
from .linear import Linear
from .module import IncompatibleKeys, Network, manual_seed, skip_init
from ..ad.node import Parameter

__all__ = ["Network", "ModuleList", "Sequential", "Linear", "Embedding", "LayerNorm", "Dropout", "Parameter",
           "IncompatibleKeys", "manual_seed", "using_dropout_key"]
