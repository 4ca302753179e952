"""BFPreTrainedModel: what every BF model shares, so the model files hold only the model.

Loading reads the checkpoints transformers writes (safetensors, legacy pytorch_model.bin,
sharded with an index; local folders or the hub cache, through `cached_file`), matches
parameters by name, and checks everything before it copies anything. Saving writes
safetensors that transformers' torch classes load as they are.
"""

import contextlib
import copy
import functools
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from brunoflow.ad.node import as_array, value_of
from brunoflow.net import Embedding, LayerNorm, Linear, Network, skip_init
from transformers import AutoConfig, PretrainedConfig
from transformers.utils import logging

from .bf_checkpoint_io import check_readable, read_checkpoint, resolve_checkpoint_files, write_checkpoint
from .modeling_bf_buckets import bucketed_forward

logger = logging.get_logger(__name__)

_LEGACY_SUFFIXES = ((".gamma", ".weight"), (".beta", ".bias"))  # TF-era LayerNorm names
_FLOAT_CHECKPOINT_DTYPES = ("float16", "bfloat16", "float32", "float64")  # cast to float32/64 on load


def _modern_name(key):
    for old, new in _LEGACY_SUFFIXES:
        if key.endswith(old):
            return key[: -len(old)] + new
    return key


def resolve_dtype(dtype):
    """None/"auto"/"float32"/"float64"/jnp or torch dtypes → a float jnp dtype BF computes in."""
    if dtype is None or dtype == "auto":
        return jnp.dtype(jnp.float32)
    name = str(dtype).removeprefix("torch.")
    if name not in ("float32", "float64"):
        try:
            name = jnp.dtype(dtype).name
        except TypeError:
            pass
    if name not in ("float32", "float64"):
        raise ValueError(f"dtype must be float32 or float64 (BF computes in full precision), got {dtype!r}")
    if name == "float64" and not jax.config.jax_enable_x64:
        raise ValueError("dtype=float64 needs 64-bit JAX: run jax.config.update('jax_enable_x64', True) "
                         "(or set JAX_ENABLE_X64=1) before building the model")
    return jnp.dtype(name)


def host_int_array(value, name, ndim=None, hint=""):
    """(host numpy copy or None when traced by jax.jit, shape) of integer ids, checked."""
    raw = value_of(value)
    if isinstance(raw, jax.core.Tracer):
        values = None
        shape, dtype = tuple(raw.shape), raw.dtype
    else:
        # integer numpy arrays are checked as they are: through jnp, int64 ids would compile a
        # conversion kernel for every new shape just to be read back
        integers = isinstance(raw, np.ndarray) and raw.dtype.kind in "iub"
        values = raw if integers else np.asarray(as_array(raw))
        shape, dtype = values.shape, values.dtype
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.bool_)):
        raise TypeError(f"{name} must hold integers, got dtype {dtype}")
    if ndim is not None and len(shape) != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions {hint}, got shape {shape}")
    return values, shape


def load_config(name_or_path, hub, kwargs):
    """(config, unused kwargs) of a folder or cached hub repo, with errors that name the file and the fix."""
    subfolder = hub.get("subfolder")
    folder = os.path.join(str(name_or_path), subfolder) if subfolder else str(name_or_path)
    if os.path.isdir(folder):
        check_readable(folder)  # an unlistable folder would read as one without config.json
        check_readable(os.path.join(folder, "config.json"))
    if os.path.isdir(folder) and not os.path.isfile(os.path.join(folder, "config.json")):
        raise OSError(f"{folder} has no config.json: save the model with save_pretrained (it writes config.json "
                      "next to the weights), or pass config=BertConfig.from_pretrained(...)")
    try:
        return AutoConfig.from_pretrained(name_or_path, return_unused_kwargs=True, **hub, **kwargs)
    except OSError as err:
        raise OSError(f"could not read config.json of {str(name_or_path)!r}: {err}\npass a folder that "
                      "save_pretrained wrote, or the id of a model already in the Hugging Face cache (download it "
                      "once where there is network, e.g. `hf download <id>`)") from err
    except Exception as err:  # a field of the wrong type fails huggingface_hub's validation, its own error type
        raise ValueError(f"config.json of {str(name_or_path)!r} is not a valid config "
                         f"({str(err).splitlines()[0]}{_second_line(err)}): fix or re-save it with save_pretrained") \
            from err


def _second_line(err):
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return f" {lines[1]}" if len(lines) > 1 else ""


_loading = [False]  # inside from_pretrained: post_init leaves the values to the checkpoint


@contextlib.contextmanager
def _loading_checkpoint():
    _loading.append(True)
    try:
        yield
    finally:
        _loading.pop()


class BFPreTrainedModel(Network):
    """Base class of the BF models: a `bf.net.Network` holding an HF config.

    Subclasses set `config_class`, `base_model_prefix`, `_tied_weights_keys` ({target: source},
    HF's names) and `_keys_to_ignore_on_load_unexpected` (regexes), and call `post_init()`.
    Heads with labels declare how padding treats them in `_label_padding` (modeling_bf_buckets).

    A plain call runs as one compiled program at a bucket length (`modeling_bf_buckets`); set
    `model.compiled_forward = False` for the eager path (one kernel per op).
    """

    compiled_forward = True
    _label_padding = {}  # label argument -> its pad value at padded positions; None: no sequence axis
    base_model_prefix = ""
    _tied_weights_keys = {}
    _keys_to_ignore_on_load_unexpected = [r"position_ids$", r"token_type_ids$"]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "__init__" in cls.__dict__:
            init = cls.__init__

            @functools.wraps(init)
            def init_without_layer_draws(self, *args, **kw):
                # post_init sets every value with transformers' scheme, drawn on the host: the
                # layers' own random draws would only cost a compiled kernel per weight shape
                with skip_init():
                    init(self, *args, **kw)

            cls.__init__ = init_without_layer_draws

    def __init__(self, config):
        super().__init__()
        if not isinstance(config, self.config_class):
            raise TypeError(f"{type(self).__name__} needs a {self.config_class.__name__}, got "
                            f"{type(config).__name__}; build one with {self.config_class.__name__}(...) or "
                            f"{self.config_class.__name__}.from_pretrained(path)")
        self.config = config
        self.name_or_path = config.name_or_path

    # -- init and tying ----------------------------------------------------------------
    def post_init(self):
        """Initialise every parameter as transformers does (once: heads wrap an initialised base
        model), then tie weights. Inside from_pretrained only tie: loading initialises what
        the checkpoint lacks."""
        if not _loading[-1]:
            rng = np.random.default_rng(0)
            for module in self.modules():
                if not module.__dict__.get("_bf_initialized"):
                    self._init_weights(module, rng)
                    object.__setattr__(module, "_bf_initialized", True)
        self.tie_weights()

    def _init_weights(self, module, rng):
        """transformers' BERT init: N(0, initializer_range) weights, zero biases, unit LayerNorm.
        Drawn with numpy on the host, so no kernel is compiled per weight shape."""
        std = getattr(self.config, "initializer_range", 0.02)

        def normal(param):
            return rng.normal(0.0, std, param.shape).astype(param.dtype)

        def filled(param, value):  # host-made: jnp.full would compile a kernel per shape
            return jnp.asarray(np.full(param.shape, value, param.dtype))

        if isinstance(module, Linear):
            module.weight.val = jnp.asarray(normal(module.weight))
            if module.bias is not None:
                module.bias.val = filled(module.bias, 0)
        elif isinstance(module, Embedding):
            table = normal(module.weight)
            if module.padding_idx is not None:
                table[module.padding_idx] = 0
            module.weight.val = jnp.asarray(table)
        elif isinstance(module, LayerNorm) and module.weight is not None:
            module.weight.val = filled(module.weight, 1)
            module.bias.val = filled(module.bias, 0)

    def tie_weights(self):
        """Make each tied target (e.g. the MLM decoder weight) the very Parameter of its source."""
        if not getattr(self.config, "tie_word_embeddings", True):
            return
        for target, source in self._tied_weights_keys.items():
            owner_path, _, name = target.rpartition(".")
            source_param = self._parameter(source)
            if source_param is not None:
                setattr(self.get_submodule(owner_path), name, source_param)

    def _parameter(self, dotted):
        owner_path, _, name = dotted.rpartition(".")
        try:
            return self.get_submodule(owner_path)._parameters.get(name)
        except AttributeError:
            return None

    # -- compiled forwards ----------------------------------------------------------------
    def compiled_call(self, args, kwargs):
        return bucketed_forward(self, args, kwargs)

    def compile_key(self):
        """The class and the config (less names and paths): models of one architecture share
        compiled programs, whichever checkpoint they hold (the weights are arguments)."""
        config = {k: v for k, v in self.config.to_dict().items()
                  if k not in ("_name_or_path", "name_or_path", "architectures", "transformers_version", "torch_dtype",
                               "dtype", "_commit_hash")}
        return type(self).__qualname__, json.dumps(config, sort_keys=True, default=str)

    # -- conveniences users of HF models reach for ------------------------------------------
    @property
    def hf_device_map(self):
        """Refused with a pointer to what runs a BF model: transformers' `Pipeline` reads this first
        (before `device`, `to()`, torch tensors), and so do its other torch-only tools.

        transformers offers no hook that gives a model instance its own pipeline class for a built-in
        task: re-registering "fill-mask" would replace it for every torch model in the process.
        """
        raise TypeError(f"{type(self).__name__} is a brunoflow (JAX) model, which transformers' pipeline() and its "
                        "other torch tools cannot run; use bf_bert.fill_mask.bf_pipeline('fill-mask', model=model, "
                        "tokenizer=tokenizer): same call, same output format")

    @property
    def dtype(self):
        return next(self.parameters()).dtype

    @property
    def base_model(self):
        return getattr(self, self.base_model_prefix, self)

    def get_input_embeddings(self):
        return self.base_model.embeddings.word_embeddings

    def num_parameters(self):
        return sum(p.size for p in self.parameters())

    def to_dtype(self, dtype):
        """Cast every parameter to float32 or float64 (float64 needs jax_enable_x64)."""
        dtype = resolve_dtype(dtype)
        for param in self.parameters():
            if param.dtype != dtype:  # cast on the host: astype would compile a kernel per shape
                param.val = jnp.asarray(np.asarray(param.val).astype(dtype))
        return self

    # -- loading ------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, dtype=None,
                        cache_dir=None, force_download=False, local_files_only=False, token=None,
                        revision="main", subfolder="", ignore_mismatched_sizes=False,
                        output_loading_info=False, **kwargs):
        """Load a checkpoint written by transformers (torch) or by `save_pretrained`.

        `pretrained_model_name_or_path`: a folder, or a hub id already in the HF cache (there
        is no download here when offline). Keyword arguments that are config attributes
        (`num_labels=3`, `problem_type=...`) override the saved config.
        """
        if model_args:
            raise TypeError(f"{cls.__name__}.from_pretrained takes the path and keyword arguments only")
        dtype = resolve_dtype(dtype)
        hub = dict(cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only,
                   token=token, revision=revision, subfolder=subfolder)
        if config is None or isinstance(config, (str, os.PathLike)):
            config_source = pretrained_model_name_or_path if config is None else config
            config, unused = load_config(config_source, hub, kwargs)
        else:
            config_source = None
            config = copy.deepcopy(config)  # as transformers: the caller's config is never modified
            unused = {}
            for name, value in kwargs.items():
                if hasattr(config, name):
                    setattr(config, name, value)
                else:
                    unused[name] = value
        if unused:
            raise TypeError(f"{cls.__name__}.from_pretrained got arguments that are neither loading options nor "
                            f"attributes of {type(config).__name__}: {sorted(unused)}")
        if not isinstance(config, cls.config_class):
            where = f"{str(config_source)!r} holds" if config_source is not None else "the config passed is"
            raise TypeError(f"{where} a {getattr(config, 'model_type', '?')!r} config ({type(config).__name__}); "
                            f"{cls.__name__} loads {cls.config_class.model_type!r} checkpoints only "
                            f"(its config must be a {cls.config_class.__name__})")
        files = resolve_checkpoint_files(pretrained_model_name_or_path, hub)
        with _loading_checkpoint():  # the checkpoint supplies the values; only what it lacks gets an init
            model = cls(config)
        config.name_or_path = model.name_or_path = str(pretrained_model_name_or_path)
        state = {}
        for path in files:
            state.update(read_checkpoint(path))
        info = model._load_checkpoint_state(state, files[0], dtype, ignore_mismatched_sizes)
        # kept on the model: workflows that read a head (explain, analyses) refuse a random one
        model.newly_initialized = tuple(info["missing_keys"]) + tuple(n for n, _, _ in info["mismatched_keys"])
        model.eval()  # as transformers: a loaded model starts in eval mode
        return (model, info) if output_loading_info else model

    def _load_checkpoint_state(self, state, source, dtype, ignore_mismatched_sizes):
        """Match checkpoint keys to parameters, check every shape, then copy. Returns HF's loading info."""
        own = dict(self.named_parameters(remove_duplicate=False))
        matched, unexpected, mismatched = {}, [], []
        not_float = []
        for key, value in state.items():
            key = _modern_name(key)  # as transformers, reported under its modern name too
            name = self._parameter_name_for(key, own)
            if name is None:
                if not any(re.search(p, key) for p in self._keys_to_ignore_on_load_unexpected):
                    unexpected.append(key)
            elif np.dtype(value.dtype).name not in _FLOAT_CHECKPOINT_DTYPES:
                not_float.append(f"{key} ({np.dtype(value.dtype).name})")
            elif tuple(value.shape) != own[name].shape:
                mismatched.append((name, tuple(value.shape), own[name].shape))
            else:
                matched[name] = value
        if not_float:  # casting would load made-up values: ints or bools are no weights of a float model
            raise ValueError(f"{source} stores weights of {type(self).__name__} as non-float data (nothing was "
                             f"loaded): {', '.join(not_float[:4])}{' ...' if len(not_float) > 4 else ''}; weights are "
                             f"{'/'.join(_FLOAT_CHECKPOINT_DTYPES)}: the file is damaged or was not written for this "
                             "model, save it again with save_pretrained")
        if not matched:
            raise ValueError(f"no parameter of {type(self).__name__} was found in {source}: it is not a checkpoint "
                             f"of this architecture (first keys: {list(state)[:3]})")
        lines = "\n  ".join(f"{n}: checkpoint {got}, model {want}" for n, got, want in mismatched)
        if mismatched and not ignore_mismatched_sizes:
            raise ValueError(f"shape mismatch loading {source} into {type(self).__name__} (nothing was loaded):\n  "
                             f"{lines}\nfix the config, or pass ignore_mismatched_sizes=True to re-initialise them")
        # as transformers: a tied alias of a loaded parameter is not missing, and a re-initialised
        # mismatched one is reported under mismatched_keys only
        handled = {id(own[n]) for n in matched} | {id(own[n]) for n, _, _ in mismatched}
        missing = [n for n, p in own.items() if id(p) not in handled]
        # init first: a module may own a missing parameter next to a loaded one
        self._init_missing({id(own[n]) for n in missing} | {id(own[n]) for n, _, _ in mismatched})
        for name, value in matched.items():
            own[name].val = jnp.asarray(value, dtype)
        self.to_dtype(dtype)  # missing (freshly initialised) parameters follow the checkpoint's dtype
        if missing:
            logger.warning(f"Some weights of {type(self).__name__} were not initialized from the checkpoint at "
                           f"{source} and are newly initialized: {missing}\nTrain the model on a downstream "
                           "task before using it for predictions.")
        if mismatched:
            logger.warning(f"Some weights of {type(self).__name__} were newly initialized because their shapes in "
                           f"the checkpoint at {source} do not match (ignore_mismatched_sizes=True):\n  {lines}")
        if unexpected:
            logger.warning(f"Some weights of the checkpoint at {source} were not used when initializing "
                           f"{type(self).__name__}: {unexpected}")
        return {"missing_keys": missing, "unexpected_keys": unexpected,
                "mismatched_keys": [(n, got, want) for n, got, want in mismatched], "error_msgs": []}

    def _init_missing(self, param_ids):
        """Give the modules that own a parameter the checkpoint did not supply their usual init."""
        rng = np.random.default_rng(0)
        for module in self.modules():
            if any(p is not None and id(p) in param_ids for p in module._parameters.values()):
                self._init_weights(module, rng)

    def _parameter_name_for(self, key, own):
        """The parameter a checkpoint key names: exact, or with or without the base prefix."""
        prefix = self.base_model_prefix + "."
        for candidate in (key, prefix + key, key.removeprefix(prefix)):
            if candidate in own:
                return candidate
        return None

    # -- saving -------------------------------------------------------------------------
    def save_pretrained(self, save_directory, safe_serialization=True, max_shard_size="5GB"):
        """Write config.json and the weights as transformers' torch classes read them.

        Tied targets are written once, under their source's name, as transformers does.
        """
        os.makedirs(save_directory, exist_ok=True)
        config = self.config
        config.architectures = [type(self).__name__.removeprefix("BF")]
        config.save_pretrained(save_directory)
        tensors = {name: np.asarray(p.val) for name, p in self.named_parameters()}
        write_checkpoint(tensors, save_directory, safe_serialization, max_shard_size)

    # -- masks --------------------------------------------------------------------------
    def get_extended_attention_mask(self, attention_mask, dtype):
        """(B, S) 1/0 keep mask → additive (B, 1, 1, S): 0 where kept, the dtype's minimum where padded."""
        keep = jnp.asarray(attention_mask).astype(bool)[:, None, None, :]
        return jnp.where(keep, 0.0, jnp.finfo(dtype).min).astype(dtype)

    def get_head_mask(self, head_mask, num_hidden_layers, num_heads):
        """None, (N,) or (L, N) multipliers → one (N, 1, 1) array (or None) per layer."""
        if head_mask is None:
            return [None] * num_hidden_layers
        mask = np.asarray(value_of(head_mask), dtype=np.float64)
        if mask.ndim == 1:
            mask = np.broadcast_to(mask, (num_hidden_layers, mask.shape[0]))
        if mask.shape != (num_hidden_layers, num_heads):
            raise ValueError(f"head_mask must have shape ({num_heads},) or ({num_hidden_layers}, {num_heads}) "
                             f"(num_hidden_layers, num_attention_heads), got {tuple(np.shape(head_mask))}")
        return [jnp.asarray(row[:, None, None], self.dtype) for row in mask]


__all__ = ["BFPreTrainedModel", "check_readable", "host_int_array", "load_config", "resolve_dtype"]
