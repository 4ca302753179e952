"""BFAutoModel*: pick the BF class for a checkpoint's `model_type`, as transformers' AutoModel* do."""

import importlib
import os

from transformers import PretrainedConfig

from ...modeling_bf_utils import load_config

# model_type → module under transformers.models; one row per architecture BF implements.
_MODULES = {"bert": "bert.modeling_bf_bert"}


class _BFAutoClass:
    """`from_pretrained(path, **kwargs)` and `from_config(config)` for one task; never instantiated."""

    task_suffix = ""  # "" is the bare encoder, else e.g. "ForMaskedLM"

    def __init__(self):
        raise OSError(f"{type(self).__name__} is built with {type(self).__name__}.from_pretrained(path) or "
                      f".from_config(config), not instantiated")

    @classmethod
    def model_class(cls, config):
        model_type = getattr(config, "model_type", None)
        if model_type not in _MODULES:
            raise ValueError(f"{cls.__name__} has no BF model for model_type {model_type!r} "
                             f"({type(config).__name__}); BF implements: {sorted(_MODULES)}")
        module = importlib.import_module(f"transformers.models.{_MODULES[model_type]}")
        prefix = type(config).__name__.removesuffix("Config")
        return getattr(module, f"BF{prefix}{cls.task_suffix or 'Model'}")

    @classmethod
    def from_config(cls, config):
        if not isinstance(config, PretrainedConfig):
            raise TypeError(f"{cls.__name__}.from_config needs a transformers config, got {type(config).__name__}")
        return cls.model_class(config)(config)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, **kwargs):
        if config is None or isinstance(config, (str, os.PathLike)):
            hub = {k: kwargs[k] for k in ("cache_dir", "force_download", "local_files_only", "token", "revision",
                                          "subfolder") if k in kwargs}
            config, _ = load_config(config or pretrained_model_name_or_path, hub, {})
        return cls.model_class(config).from_pretrained(pretrained_model_name_or_path, *model_args, config=config,
                                                       **kwargs)


def _auto_class(name, suffix):
    return type(name, (_BFAutoClass,), {"task_suffix": suffix, "__doc__": f"The BF{{Model}}{suffix} of a checkpoint."})


BFAutoModel = _auto_class("BFAutoModel", "")
BFAutoModelForPreTraining = _auto_class("BFAutoModelForPreTraining", "ForPreTraining")
BFAutoModelForMaskedLM = _auto_class("BFAutoModelForMaskedLM", "ForMaskedLM")
BFAutoModelForNextSentencePrediction = _auto_class("BFAutoModelForNextSentencePrediction", "ForNextSentencePrediction")
BFAutoModelForSequenceClassification = _auto_class("BFAutoModelForSequenceClassification", "ForSequenceClassification")
BFAutoModelForMultipleChoice = _auto_class("BFAutoModelForMultipleChoice", "ForMultipleChoice")
BFAutoModelForTokenClassification = _auto_class("BFAutoModelForTokenClassification", "ForTokenClassification")
BFAutoModelForQuestionAnswering = _auto_class("BFAutoModelForQuestionAnswering", "ForQuestionAnswering")

__all__ = [
    "BFAutoModel",
    "BFAutoModelForPreTraining",
    "BFAutoModelForMaskedLM",
    "BFAutoModelForNextSentencePrediction",
    "BFAutoModelForSequenceClassification",
    "BFAutoModelForMultipleChoice",
    "BFAutoModelForTokenClassification",
    "BFAutoModelForQuestionAnswering",
]
