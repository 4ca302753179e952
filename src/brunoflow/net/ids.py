"""Host-side range checks for integer indices: a gather on device clamps out-of-range ids
silently instead of failing, so concrete ids are checked before they index anything."""

import jax
import numpy as np

from ..ad.node import Node


def host_ids(ids):
    """ids as a host numpy array for the range check, or None when they are traced."""
    if isinstance(ids, Node):
        ids = ids.val
    if isinstance(ids, jax.core.Tracer):
        return None
    if type(ids).__module__.startswith("torch"):
        return ids.detach().cpu().numpy()
    return np.asarray(ids)


def check_in_range(ids, size, name, size_name, owner=None):
    """Raise a ValueError unless every concrete id is in [0, size). The message names the ids
    (`name`, after `owner` when given: "Embedding ids"), the range, and where the size comes from
    (`size_name`: the constructor argument or config field)."""
    host = host_ids(ids)
    if host is not None and host.size and host.dtype.kind in "iub":
        lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi >= size:
            whose = f"{owner} {name}" if owner else name
            raise ValueError(f"{whose} must be in [0, {size - 1}] ({size_name}={size}), got {name} in [{lo}, {hi}]")
