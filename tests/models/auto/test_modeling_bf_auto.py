"""BFAutoModel*: the BF class for a checkpoint's model_type, loaded as the class itself loads it.

Uses the config, input shape and checkpoint helpers of the BERT loading tests, so no kernel
compiles twice.
"""

import jax
import numpy as np
import pytest

import transformers
from transformers import (BertForMaskedLM, BertForSequenceClassification, BFAutoModel, BFAutoModelForMaskedLM,
                          BFAutoModelForMultipleChoice, BFAutoModelForNextSentencePrediction,
                          BFAutoModelForPreTraining, BFAutoModelForQuestionAnswering,
                          BFAutoModelForSequenceClassification, BFAutoModelForTokenClassification, BFBertForMaskedLM,
                          BFBertForMultipleChoice, BFBertForNextSentencePrediction, BFBertForPreTraining,
                          BFBertForQuestionAnswering, BFBertForSequenceClassification, BFBertForTokenClassification,
                          BFBertModel, RobertaConfig)

from ..bert.test_loading_bf_bert import (CONFIG, assert_close, bf_logits, build_hub_cache, tiny_config, torch_logits,
                                         torch_model)

AUTO_TO_BERT = [(BFAutoModel, BFBertModel), (BFAutoModelForPreTraining, BFBertForPreTraining),
                (BFAutoModelForMaskedLM, BFBertForMaskedLM),
                (BFAutoModelForNextSentencePrediction, BFBertForNextSentencePrediction),
                (BFAutoModelForSequenceClassification, BFBertForSequenceClassification),
                (BFAutoModelForMultipleChoice, BFBertForMultipleChoice),
                (BFAutoModelForTokenClassification, BFBertForTokenClassification),
                (BFAutoModelForQuestionAnswering, BFBertForQuestionAnswering)]


@pytest.fixture(scope="module")
def mlm(tmp_path_factory):
    """(folder, torch logits) of a saved tiny BertForMaskedLM."""
    model = torch_model(BertForMaskedLM)
    folder = tmp_path_factory.mktemp("mlm")
    model.save_pretrained(folder)
    return str(folder), torch_logits(model)


def test_every_auto_class_is_in_all_and_exported_by_transformers():
    from transformers.models.auto import modeling_bf_auto
    assert sorted(modeling_bf_auto.__all__) == sorted(auto.__name__ for auto, _ in AUTO_TO_BERT)
    for name in modeling_bf_auto.__all__:
        assert getattr(transformers, name) is getattr(modeling_bf_auto, name)


@pytest.mark.parametrize("auto, bert", AUTO_TO_BERT, ids=lambda c: c.__name__)
def test_model_type_bert_maps_to_the_bert_class_of_the_task(auto, bert):
    assert auto.model_class(tiny_config()) is bert


def test_from_config_builds_the_class():
    model = BFAutoModelForMaskedLM.from_config(tiny_config())
    assert type(model) is BFBertForMaskedLM
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight


def test_from_pretrained_loads_the_weights(mlm):
    folder, expected = mlm
    model = BFAutoModelForMaskedLM.from_pretrained(folder)
    assert type(model) is BFBertForMaskedLM and not model.training
    assert_close(bf_logits(model), expected)


def test_from_pretrained_passes_options_and_config_attributes(mlm):
    folder, _ = mlm
    model, info = BFAutoModelForSequenceClassification.from_pretrained(
        folder, problem_type="multi_label_classification", output_loading_info=True)
    assert type(model) is BFBertForSequenceClassification
    assert model.config.problem_type == "multi_label_classification"
    _, theirs = BertForSequenceClassification.from_pretrained(folder, output_loading_info=True)
    assert set(info["missing_keys"]) == set(theirs["missing_keys"])
    assert set(info["unexpected_keys"]) == set(theirs["unexpected_keys"])
    with jax.enable_x64(False), pytest.raises(ValueError, match="jax_enable_x64"):
        BFAutoModelForMaskedLM.from_pretrained(folder, dtype="float64")


def test_from_pretrained_reads_the_hub_cache_layout(mlm, tmp_path):
    folder, _ = mlm
    build_hub_cache(tmp_path, folder, repo_id="org/auto-bert")
    model = BFAutoModel.from_pretrained("org/auto-bert", cache_dir=str(tmp_path), local_files_only=True)
    assert type(model) is BFBertModel and model.name_or_path == "org/auto-bert"


def test_a_model_type_without_bf_classes_is_named(tmp_path):
    RobertaConfig(**CONFIG).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match=r"BFAutoModelForMaskedLM has no BF model for model_type 'roberta' "
                                         r"\(RobertaConfig\); BF implements: \['bert'\]"):
        BFAutoModelForMaskedLM.from_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type 'roberta'"):
        BFAutoModel.from_config(RobertaConfig(**CONFIG))


def test_bad_arguments_are_refused_with_the_rule():
    with pytest.raises(TypeError, match="from_config needs a transformers config, got dict"):
        BFAutoModel.from_config(dict(CONFIG))
    with pytest.raises(OSError, match=r"BFAutoModel is built with BFAutoModel\.from_pretrained\(path\)"):
        BFAutoModel()


def test_missing_folder_or_config_names_the_fix(tmp_path):
    with pytest.raises(OSError, match=r"has no config\.json(.|\n)*save_pretrained"):
        BFAutoModelForMaskedLM.from_pretrained(tmp_path)
    with pytest.raises(OSError, match=r"'org/absent'(.|\n)*hf download"):
        BFAutoModelForMaskedLM.from_pretrained("org/absent", cache_dir=str(tmp_path), local_files_only=True)


def test_the_loaded_logits_do_not_depend_on_the_entry_point(mlm):
    folder, _ = mlm
    direct = bf_logits(BFBertForMaskedLM.from_pretrained(folder))
    np.testing.assert_array_equal(bf_logits(BFAutoModelForMaskedLM.from_pretrained(folder, config=folder)), direct)
