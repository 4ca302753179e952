"""Node and Parameter: a value, the primitive that made it, its inputs, and semiring slots.

No math lives here: operators are wired in `brunoflow.ops.operators`, backprop in
`brunoflow.ad.backprop`. A Node's value may be a JAX tracer, so whole analyses can run
under `jax.jit` / `jax.vmap`.
"""

import itertools

import jax.numpy as jnp
import numpy as np

from . import scaled
from .scope import current_scope

_creation_order = itertools.count()

# Grows when a user-defined semiring with fields of its own runs, so zero_gradients() and
# fresh nodes know about them too.
SEMIRING_FIELDS = ["grad", "scaled_abs_val_grad", "scaled_entropy_wrt_output",
                   "max_grad_of_output_wrt_node", "max_neg_grad_of_output_wrt_node",
                   "max_path_of_output_wrt_node", "min_path_of_output_wrt_node"]


def register_semiring_fields(fields):
    SEMIRING_FIELDS.extend(f for f in fields if f not in SEMIRING_FIELDS)


class Deferred:
    """A value that is computed on first read, e.g. an intermediate of a compiled forward: only
    the outputs a caller reads are worth copying out of the program; the rest, which only a
    backprop reads, are made once, together, by `resolve()`. Shape and dtype are known before."""

    __slots__ = ("shape", "dtype", "resolve")

    def __init__(self, shape, dtype, resolve):
        self.shape, self.dtype, self.resolve = tuple(shape), dtype, resolve


def as_array(value):
    """Host or device data → a JAX array (tracers pass through); torch tensors via numpy."""
    if isinstance(value, Node):
        return value.val
    if type(value).__module__.startswith("torch"):
        value = value.detach().cpu().numpy()
    return jnp.asarray(value)


class Node:
    """One tensor in the computation graph.

    Attributes:
        val: the forward value (a JAX array, or a tracer under jax.jit/vmap); a node of a compiled
            forward may hold a `Deferred` that the first read of `val` turns into the array.
        inputs: what the op that made this node consumed (Nodes or constant arrays); () for leaves.
        op, static: that op (a Primitive) and its static keyword parameters; None/{} for leaves.
        module, module_path: the Network whose forward made this node, and its dotted path.
        grad: filled by `backprop`, None before.
        scaled_abs_val_grad, scaled_entropy_wrt_output: the |grad| and entropy path sums as
            `Scaled` (mantissa · 2**exponent: finite at any depth in float32); read them as
            abs_val_grad / entropy_wrt_output (the node's dtype, inf where the value does not
            fit), log_abs_val_grad (always finite) and compute_entropy().
        max_grad_of_output_wrt_node, max_neg_grad_of_output_wrt_node: (values, parents) where
            parents[i] indexes `get_parents()` (the consumer whose path won), -1 for none.
        max_path_of_output_wrt_node, min_path_of_output_wrt_node: (values, consumer, source),
            the neuron-granular max/min over paths and its element back-pointers (MaxPath).
    """

    # numpy must defer to Node's reflected operators: otherwise `ndarray - node` treats the
    # Node as a sequence and runs one getitem kernel per element
    __array_ufunc__ = None

    def __init__(self, val, name=None):
        self.val = as_array(val)
        self.name = name
        self.op = None
        self.static = {}
        self.inputs = ()
        self._init_bookkeeping()

    @classmethod
    def from_op(cls, op, inputs, static, val):
        node = cls.__new__(cls)
        node._val = val
        node.name = None
        node.op = op
        node.static = static
        node.inputs = inputs
        node._init_bookkeeping()
        return node

    def _init_bookkeeping(self):
        self._order = next(_creation_order)  # creation order is a topological order
        self.module, self.module_path = current_scope()
        self._consumers = []
        for field in SEMIRING_FIELDS:
            setattr(self, field, None)

    @property
    def val(self):
        value = self._val
        if value.__class__ is Deferred:
            value.resolve()  # sets _val, here and on the other nodes made with it
            value = self._val
        return value

    @val.setter
    def val(self, value):
        self._val = value

    # -- array-like surface -------------------------------------------------------------
    @property
    def shape(self):
        value = self._val  # a Deferred knows its shape: reading it must not compute the value
        return value.shape if value.__class__ is Deferred else tuple(jnp.shape(value))

    @property
    def ndim(self):
        return len(self.shape)

    @property
    def size(self):
        return int(np.prod(self.shape))

    @property
    def dtype(self):
        return self._val.dtype

    @property
    def is_leaf(self):
        return self.op is None

    def set_name(self, new_name):
        self.name = new_name

    def __len__(self):
        if not self.shape:
            raise TypeError("len() of a 0-d Node")
        return self.shape[0]

    def __iter__(self):
        # Without it Python iterates via __getitem__ until IndexError, one kernel per row.
        return (self[i] for i in range(len(self)))

    def __array__(self, dtype=None, copy=None):
        # Without it numpy sees __len__/__iter__ and builds an object array of Nodes, one
        # getitem kernel per element (minutes for a logits tensor). Under jax.jit the value is
        # a tracer, whose own __array__ raises JAX's TracerArrayConversionError.
        # np.asarray takes `copy` from numpy 2 on; None, its default, means "copy if needed".
        kwds = {} if copy is None else {"copy": copy}
        return np.asarray(self.val, dtype=dtype, **kwds)

    def numpy(self):
        """The value as a writable host numpy array, as torch's Tensor.numpy().

        A JAX value is immutable, so unlike torch's the array is a copy: writing to it leaves
        the node alone. `np.asarray(node)` converts without copying where JAX allows (read-only).
        """
        return np.array(self.val)

    def __repr__(self):
        where = f", module_path={self.module_path!r}" if self.module_path else ""
        made_by = f"op={self.op.name}" if self.op is not None else "leaf"
        label = f"name={self.name!r}, " if self.name else ""
        return f"{type(self).__name__}({label}{made_by}, shape={self.shape}, dtype={self.dtype}{where})"

    # -- backprop results ---------------------------------------------------------------
    def backprop(self, values_to_compute=("grad", "max_grad", "abs_val_grad", "entropy"),
                 save_leaf_grads_only=False, retain=None, inputs=None, seed=None):
        """Run one reverse sweep from this node for every semiring named in values_to_compute.

        Leaves accumulate (⊕) what earlier backprops left, as torch's .grad does: call
        `zero_gradients()` between independent runs. Non-leaf values are overwritten.
        `save_leaf_grads_only=True` frees every non-leaf node's values as soon as its inputs
        have consumed them, except nodes in `retain` (an iterable of Nodes, or a predicate
        `node -> bool`). `inputs` (Nodes, leaves or not), as torch's backward(inputs=...):
        only nodes on a path from one of them to this node get values; the rest of the graph
        (e.g. every weight) is a constant and costs nothing. The inputs themselves are kept.
        `seed`: this node's state per semiring, instead of each one's own seed, to continue a
        sweep of a larger graph that reached this node (`brunoflow.ad.backprop.states_of`).
        """
        from .backprop import backprop
        backprop(self, values_to_compute, save_leaf_grads_only=save_leaf_grads_only, retain=retain, inputs=inputs,
                 seed=seed)

    def zero_gradients(self):
        """Clear semiring values and back-pointers of every node reachable from this one."""
        from .backprop import ancestors
        for node in ancestors(self):
            node._zero_self()

    def _zero_self(self):
        self._consumers = []
        for field in SEMIRING_FIELDS:
            setattr(self, field, None)

    @property
    def abs_val_grad(self):
        """Σ over paths to the output of |product of partials|, in this node's dtype: inf where
        it passes the dtype's range (log_abs_val_grad does not)."""
        return None if self.scaled_abs_val_grad is None else self.scaled_abs_val_grad.value()

    @property
    def log_abs_val_grad(self):
        """Natural log of abs_val_grad, computed from the scaled sum: finite at any depth (-inf at 0)."""
        return None if self.scaled_abs_val_grad is None else self.scaled_abs_val_grad.log()

    @property
    def entropy_wrt_output(self):
        """The entropy semiring's h = Σ_paths -|P| log|P|, in this node's dtype (inf where it does not fit)."""
        return None if self.scaled_entropy_wrt_output is None else self.scaled_entropy_wrt_output.value()

    def compute_entropy(self):
        """Shannon entropy of the gradient paths from this node to the output (needs "entropy")."""
        if self.scaled_entropy_wrt_output is None or self.scaled_abs_val_grad is None:
            raise ValueError("compute_entropy() needs backprop(values_to_compute=(..., 'entropy')) "
                             "to have reached this node first")
        return Node(scaled.entropy(self.scaled_abs_val_grad, self.scaled_entropy_wrt_output))

    def get_parents(self):
        """The consumers (op outputs) this node fed in the backprops since zero_gradients().

        Held weakly, so a leaf (a model weight) never keeps a whole old graph alive: a consumer
        whose graph was freed shows as None. Keep the output (or model outputs) to walk paths.
        """
        return [ref() for ref in self._consumers]

    def get_max_grad_parent(self):
        """Object array of this node's shape: per element, the consumer on the top path (or None)."""
        return self._parents_view(self.max_grad_of_output_wrt_node, "max_grad_of_output_wrt_node")

    def get_max_neg_grad_parent(self):
        return self._parents_view(self.max_neg_grad_of_output_wrt_node, "max_neg_grad_of_output_wrt_node")

    def _parents_view(self, field, name):
        if field is None:
            raise ValueError(f"{name} is empty: run backprop(values_to_compute=(..., 'max_grad')) first")
        index = np.asarray(field[1])
        table = np.empty(len(self._consumers) + 1, dtype=object)
        for i, consumer in enumerate(self.get_parents()):  # element-wise: a Node looks like a sequence
            table[i] = consumer
        # the last slot stays None: index -1 means nothing flowed
        picked = table[index]
        if index.ndim == 0:  # numpy hands back the bare element; keep the documented array
            picked = np.empty((), dtype=object)
            picked[()] = table[index]
        return picked

    # -- in-place updates (optimizers, weight loading) ----------------------------------
    def copy_(self, src):
        """Replace this node's value by src (Node, array, or torch tensor) of the same shape."""
        value = as_array(src)
        if tuple(value.shape) != self.shape:
            raise ValueError(f"copy_: source shape {tuple(value.shape)} does not match {self.shape}")
        self.val = value.astype(self.val.dtype) if value.dtype != self.val.dtype else value
        return self


class Parameter(Node):
    """A trainable leaf of a Network."""


def value_of(x):
    """A Node's array, or x itself (a constant array or number): the one spelling of unwrapping."""
    return x.val if isinstance(x, Node) else x


def on_cpu(value):
    """Whether numpy can read `value` where it is: a host array or number, or a JAX array whose
    devices are all CPUs (read in place, no copy and no kernel)."""
    try:
        return all(device.platform == "cpu" for device in value.devices())
    except AttributeError:  # a Python number or a numpy array
        return True
