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


def check_in_range(ids, size, owner, noun, size_name):
    """Raise a ValueError naming `owner`'s `noun` unless every concrete id is in [0, size)."""
    host = host_ids(ids)
    if host is not None and host.size and np.issubdtype(host.dtype, np.integer):
        lo, hi = int(host.min()), int(host.max())
        if lo < 0 or hi >= size:
            raise ValueError(f"{owner} {noun} must be in [0, {size - 1}] ({size_name}={size}), "
                             f"got {noun} in [{lo}, {hi}]")
