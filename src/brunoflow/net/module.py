"""Network (torch-style module tree) and the default key stream that layers initialise from.

Attribute path = checkpoint key = module path on every Node the module makes. Paths are
assigned from the root when a root call starts, so a module built alone needs no path.
"""

import collections
import contextlib

import jax
import numpy as np

from ..ad.node import Parameter, as_array
from ..ad.scope import current_scope, module_scope
from . import compiled

IncompatibleKeys = collections.namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

_layout = [0]   # bumped by every tree change and every path assignment: a root's stamp is stale after either
_roots = []     # the root whose call is running (a stack: a forward may call another, unrelated root)
_key_stream = []


def manual_seed(seed):
    """Seed the key stream that layers built without `key=` draw from (as torch.manual_seed)."""
    _key_stream[:] = [jax.random.PRNGKey(seed)]


def make_key(key=None):
    """A JAX PRNG key from a key, an int seed, or None (the next key of the default stream)."""
    if key is None:
        if not _key_stream:
            manual_seed(0)
        _key_stream[0], key = jax.random.split(_key_stream[0])
        return key
    return jax.random.PRNGKey(key) if isinstance(key, (int, np.integer)) else key


_skipping_init = [False]


@contextlib.contextmanager
def skip_init():
    """Layers built inside start from zeros made on the host: no random draws and no kernel
    compiled per weight shape. For models whose every value is about to be loaded."""
    _skipping_init.append(True)
    try:
        yield
    finally:
        _skipping_init.pop()


def skipping_init():
    return _skipping_init[-1]


def initial_value(draw, shape, dtype):
    """`draw()` (a random init), or host zeros of (shape, dtype) inside `skip_init()`."""
    if skipping_init():
        return np.zeros(shape, dtype)
    return draw()


def _tree_changed():
    _layout[0] += 1


class Network:
    """Base class of every bf layer and model, used like torch.nn.Module.

    Parameters and sub-Networks assigned as attributes register themselves in order.
    Calling a Network runs `forward` inside its module scope, so every Node made there has
    `node.module` = the Network and `node.module_path` = its dotted path from the root.

    `compiled_forward = True` (a class or instance attribute) makes root calls run as one
    compiled program (`brunoflow.net.compiled`): the same graph, without a kernel per op.
    Off by default: it assumes a forward's graph depends only on its arguments' shapes, its
    static arguments and the module tree, not on other Python state.
    """

    compiled_forward = False

    def __init__(self):
        # _path, _root: set by the root's assign_module_paths; _stamp: the layout it assigned for
        self.__dict__.update(_parameters={}, _modules={}, training=True, _path="", _root=None, _stamp=-1)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        module, caller_path = current_scope()
        if module is None:  # a root call: paths are relative to this network
            if self.compiled_forward:
                result = self.compiled_call(args, kwargs)
                if result is not compiled.EAGER:
                    return result
            with self.as_root():
                return self.forward(*args, **kwargs)
        # a network outside the running root's tree (e.g. kept in a plain list) has no path of
        # its own there: its nodes are attributed to the caller's path rather than a stale one
        path = self._path if _roots and self._root is _roots[-1] else caller_path
        with module_scope(self, path):
            return self.forward(*args, **kwargs)

    def compiled_call(self, args, kwargs):
        """A root call through `brunoflow.net.compiled.forward` (or compiled.EAGER); models
        override it to pad their inputs to a few shared lengths."""
        return compiled.forward(self, args, kwargs)

    def compile_key(self):
        """What a compiled forward depends on beyond the module tree and parameter shapes, for
        networks whose compiles may be shared; None keeps them to this instance."""
        return None

    @contextlib.contextmanager
    def as_root(self):
        """Calls of submodules inside are parts of one forward of this network: their nodes get
        paths from it (`model.bert(...)` then `model.cls(...)` make `bert.…` and `cls.…` nodes)."""
        if self._stamp != _layout[0]:
            self.assign_module_paths()
        _roots.append(self)
        try:
            with module_scope(self, ""):
                yield self
        finally:
            _roots.pop()

    def assign_module_paths(self):
        """Give every submodule and parameter its dotted path from this network (a root call
        does this itself; call it to read `param.module_path` before any forward)."""
        _tree_changed()
        seen = set()
        for path, module in self.named_modules():
            object.__setattr__(module, "_path", path)
            object.__setattr__(module, "_root", self)
            for param in module._parameters.values():
                if param is not None and id(param) not in seen:  # a shared parameter keeps its first owner
                    seen.add(id(param))
                    param.module, param.module_path = module, path
        object.__setattr__(self, "_stamp", _layout[0])

    # -- registration ---------------------------------------------------------------------
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self.register_parameter(name, value)
        elif isinstance(value, Network):
            self.add_module(name, value)
        elif name in self.__dict__.get("_parameters", ()) or name in self.__dict__.get("_modules", ()):
            is_param = name in self._parameters
            if value is not None:
                raise TypeError(f"cannot assign a {type(value).__name__} to {'parameter' if is_param else 'submodule'} "
                                f"{name!r} of {type(self).__name__}: assign a "
                                + ("bf.Parameter or None, or change its value in place with .copy_(array)"
                                   if is_param else "bf.net.Network or None"))
            (self._parameters if is_param else self._modules)[name] = None
            _tree_changed()
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):  # only reached when normal lookup fails
        for registry in ("_parameters", "_modules"):
            members = self.__dict__.get(registry, {})
            if name in members:
                return members[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name):
        for registry in (self._parameters, self._modules):
            if name in registry:
                del registry[name]
                _tree_changed()
                return
        object.__delattr__(self, name)

    def register_parameter(self, name, param):
        self._register(self.__dict__.get("_parameters"), name, param, Parameter)
        owner = param.module if param is not None else None
        if param is not None and not (isinstance(owner, Network)
                                      and any(p is param for p in owner._parameters.values())):
            param.module, param.module_path = self, self._path

    def add_module(self, name, module):
        self._register(self.__dict__.get("_modules"), name, module, Network)

    def _register(self, registry, name, value, kind):
        if registry is None:
            raise AttributeError(f"cannot assign {name!r} before Network.__init__(): call super().__init__() first")
        if value is not None and not isinstance(value, kind):
            raise TypeError(f"{name!r} must be a {kind.__name__} or None, got {type(value).__name__}")
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"member names must be non-empty strings without '.', got {name!r}")
        self.__dict__.pop(name, None)  # a plain attribute of that name is replaced, as in torch
        for other in (self._parameters, self._modules):
            if other is not registry:
                other.pop(name, None)
        registry[name] = value
        _tree_changed()

    def named_modules(self, prefix="", remove_duplicate=True, _memo=None):
        memo = set() if _memo is None else _memo
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name, remove_duplicate, memo)

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        seen = set()
        for name, child in self._modules.items():
            if child is not None and id(child) not in seen:
                seen.add(id(child))
                yield name, child

    def children(self):
        return (m for _, m in self.named_children())

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """(dotted name, Parameter) in registration order; a shared parameter once, under its
        first name (remove_duplicate=False yields every name, as state_dict needs)."""
        seen = set()
        modules = self.named_modules(prefix, remove_duplicate) if recurse else [(prefix, self)]
        for path, module in modules:
            for name, param in module._parameters.items():
                if param is None or (remove_duplicate and id(param) in seen):
                    continue
                seen.add(id(param))
                yield (f"{path}.{name}" if path else name), param

    def parameters(self, recurse=True):
        return (p for _, p in self.named_parameters(recurse=recurse))

    @contextlib.contextmanager
    def using_parameters(self, values):
        """Inside, parameters() read `values` (arrays, in parameters() order) instead of their own.

        How a jitted program takes the weights as arguments (torch.func.functional_call's idea):
        traced weights keep them out of the compiled program as constants, so one compile
        serves any checkpoint of the architecture and the on-disk cache key stays small."""
        params = list(self.parameters())
        values = list(values)
        if len(values) != len(params):
            raise ValueError(f"using_parameters: {len(values)} values for {len(params)} parameters")
        with parameter_values(params, values):
            yield self

    def get_submodule(self, target):
        module = self
        for name in filter(None, target.split(".")):
            if not isinstance(module._modules.get(name), Network):
                raise AttributeError(f"{type(module).__name__} has no submodule {name!r} (looking up {target!r})")
            module = module._modules[name]
        return module

    def state_dict(self):
        """Dotted name → value (a JAX array), every name of a shared parameter included (as torch)."""
        return collections.OrderedDict((name, p.val) for name, p in self.named_parameters(remove_duplicate=False))

    def load_state_dict(self, state_dict, strict=True):
        """Copy values in by dotted name (JAX/numpy arrays or torch tensors).

        Everything is checked before anything is copied, so a failed load changes nothing.
        Shape mismatches always raise; missing and unexpected keys raise when `strict`, and
        are returned as (missing_keys, unexpected_keys) otherwise.
        """
        own = dict(self.named_parameters(remove_duplicate=False))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched, updates = [], []
        for name, param in own.items():
            if name not in state_dict:
                continue
            value = state_dict[name]
            got = tuple(getattr(value, "shape", np.shape(value)))
            if got != param.shape:
                mismatched.append(f"{name}: expected shape {param.shape}, got {got}")
            else:
                updates.append((param, as_array(value)))
        problems = [f"shape mismatch for {m}" for m in mismatched]
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if problems:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__} (nothing was loaded):\n  "
                               + "\n  ".join(problems))
        for param, value in updates:
            param.copy_(value)
        return IncompatibleKeys(missing, unexpected)

    def train(self, mode=True):
        for module in self.modules():
            object.__setattr__(module, "training", bool(mode))
        return self

    def eval(self):
        return self.train(False)

    def zero_gradients(self):
        """Clear the semiring values (and back-pointers) of every parameter."""
        for param in self.parameters():
            param._zero_self()

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(child).replace("\n", "\n  ") for name, child in self._modules.items()]
        if self.extra_repr() and lines:
            lines.insert(0, self.extra_repr())
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n  " + "\n  ".join(lines) + "\n)"


@contextlib.contextmanager
def parameter_values(params, values):
    """Inside, each of `params` reads the matching value instead of its own (e.g. a tracer)."""
    saved = [p.val for p in params]
    try:
        for param, value in zip(params, values):
            param.val = value
        yield
    finally:
        for param, value in zip(params, saved):
            param.val = value
