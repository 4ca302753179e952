"""How good a masked LM is, measured the way the default model's provenance reports it.

Four measurements, each on data the model was not fitted on (scripts/fit_default_lm.py):

    heldout_masked_tokens   held-out real sentences (scripts/lm_text.py), BERT masking (15% of word
                            pieces; 80% [MASK], 10% random, 10% kept) with a fixed seed; top-1 and top-5
                            accuracy over the whole vocabulary at every chosen position
    real_agreement          scripts/data/agreement_heldout.tsv (scripts/lm_agreement.py): the verb masked,
                            right when logit(written form) > logit(other form); overall, by subject-verb
                            distance, by attractors, by verb pair
    grammar_is_are          bf_bert.agreement_grammar, held-out nouns (seed 1, as the earlier head was
                            measured): only the copula masked, logit(is) vs logit(are)
    cloze                   scripts/data/cloze_sanity.tsv (hand-written): share of sentences with an
                            accepted answer in the top 5 (and top 1)

Evaluate any BertForMaskedLM folder (e.g. the default before and after a refit):

    .venv/bin/python scripts/lm_eval.py --model FOLDER [--out metrics.json]
"""

import argparse
import csv
import json
import random
import sys
from collections import defaultdict
from pathlib import Path

import lm_text  # beside this file: on sys.path when run as a script
import torch

HERE = Path(__file__).resolve().parent

AGREEMENT_FILE = HERE / "data" / "agreement_heldout.tsv"
CLOZE_FILE = HERE / "data" / "cloze_sanity.tsv"
FIRST_ORDINARY_ID = 999  # uncased BERT vocab: ids below are [PAD], [unused*], [UNK], [CLS], [SEP], [MASK]
MASK_SEED = 12345  # held-out masking; training masks with its own seed
DISTANCE_BUCKETS = ((1, 1, "1"), (2, 3, "2-3"), (4, 6, "4-6"), (7, 10**6, "7+"))


def bert_mask(ids, rng, vocab_size, mask_id, share=0.15):
    """BERT masking of one id list (specials excluded by the caller): (masked ids, labels with -100)."""
    ids, labels = list(ids), [-100] * len(ids)
    positions = list(range(1, len(ids) - 1))  # [CLS] ... [SEP]
    chosen = [i for i in positions if rng.random() < share] or [rng.choice(positions)]
    for i in chosen:
        labels[i] = ids[i]
        r = rng.random()
        if r < 0.8:
            ids[i] = mask_id
        elif r < 0.9:
            ids[i] = rng.randrange(FIRST_ORDINARY_ID, vocab_size)
    return ids, labels


def _batches(rows, batch_size):
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    for start in range(0, len(order), batch_size):
        batch = order[start:start + batch_size]
        width = max(len(rows[i][0]) for i in batch)
        ids = torch.zeros(len(batch), width, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for r, i in enumerate(batch):
            ids[r, :len(rows[i][0])] = torch.tensor(rows[i][0])
            labels[r, :len(rows[i][1])] = torch.tensor(rows[i][1])
        yield batch, ids, labels


@torch.no_grad()
def masked_token_accuracy(model, tokenizer, sentences, seed=MASK_SEED, batch_size=64, max_length=128):
    rng = random.Random(seed)
    rows = [bert_mask(tokenizer(s, truncation=True, max_length=max_length)["input_ids"], rng,
                      tokenizer.vocab_size, tokenizer.mask_token_id) for s in sentences]
    top1 = top5 = n = 0
    for _, ids, labels in _batches(rows, batch_size):
        logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits[labels != -100]
        gold = labels[labels != -100]
        best = logits.topk(5, dim=-1).indices
        top1 += (best[:, 0] == gold).sum().item()
        top5 += (best == gold[:, None]).any(-1).sum().item()
        n += len(gold)
    return {"sentences": len(sentences), "masked_tokens": n, "top1": round(top1 / n, 4), "top5": round(top5 / n, 4)}


def read_agreement_items(path=AGREEMENT_FILE):
    with open(path, newline="") as f:
        return [{**r, "start": int(r["start"]), "end": int(r["end"]), "distance": int(r["distance"]),
                 "attractors": int(r["attractors"])} for r in csv.DictReader(f, delimiter="\t")]


def _scores_at_mask(model, tokenizer, texts, word_pairs, batch_size=64):
    """logit(first) - logit(second) at the one [MASK] of each text."""
    rows = []
    for text in texts:
        ids = tokenizer(text, truncation=True, max_length=128)["input_ids"]
        rows.append((ids, [1 if i == tokenizer.mask_token_id else -100 for i in ids]))
    pair_ids = torch.tensor([tokenizer.convert_tokens_to_ids(list(p)) for p in word_pairs])
    out = torch.zeros(len(texts))
    for batch, ids, marks in _batches(rows, batch_size):
        logits = model(input_ids=ids, attention_mask=(ids != 0).long()).logits
        assert ((marks != -100).sum(1) == 1).all(), "every text needs exactly one [MASK]"
        at = logits[marks != -100]
        p = pair_ids[batch]
        out[batch] = (at.gather(1, p[:, :1]) - at.gather(1, p[:, 1:])).squeeze(1)
    return out


def _share(rights):
    return {"accuracy": round(sum(rights) / len(rights), 4), "n": len(rights)}


@torch.no_grad()
def agreement_accuracy(model, tokenizer, items):
    texts = [it["sentence"][:it["start"]] + tokenizer.mask_token + it["sentence"][it["end"]:] for it in items]
    margins = _scores_at_mask(model, tokenizer, texts, [(it["verb"], it["other"]) for it in items])
    groups = defaultdict(list)
    for it, m in zip(items, margins.tolist()):
        right = m > 0
        groups["all"].append(right)
        bucket = next(name for lo, hi, name in DISTANCE_BUCKETS if lo <= it["distance"] <= hi)
        groups["distance " + bucket].append(right)
        groups["attractors " + ("0" if it["attractors"] == 0 else "1+")].append(right)
        groups["pair " + "/".join(sorted((it["verb"], it["other"]), key=len))].append(right)
        groups["source " + it["source"]].append(right)
    return {k: _share(v) for k, v in sorted(groups.items(), key=lambda kv: (kv[0] != "all", kv[0]))}


@torch.no_grad()
def grammar_is_are(model, tokenizer, n=1500, seed=1):
    from bf_bert import agreement_grammar as grammar

    _, heldout_nouns = grammar.split_nouns()
    sentences = [s for s in grammar.generate(n, seed=seed, nouns=heldout_nouns) if s.verb_kind == "is"]
    margins = _scores_at_mask(model, tokenizer, [s.masked_text(tokenizer.mask_token) for s in sentences],
                              [("is", "are")] * len(sentences))
    groups = defaultdict(list)
    for s, m in zip(sentences, margins.tolist()):
        right = (m > 0) == (s.number == grammar.SG)
        groups["all"].append(right)
        if s.attractor_number is not None:
            groups["attractor " + ("matches" if s.attractor_number == s.number else "differs")].append(right)
    return {k: _share(v) for k, v in groups.items()}


def read_cloze(path=CLOZE_FILE):
    lines = [line for line in Path(path).read_text().splitlines() if line and not line.startswith("#")]
    return [{"sentence": r["sentence"], "answers": r["answers"].split("|")}
            for r in csv.DictReader(lines, delimiter="\t")]


@torch.no_grad()
def cloze(model, tokenizer, items):
    enc = tokenizer([it["sentence"] for it in items], padding=True, return_tensors="pt")
    logits = model(**enc).logits[enc["input_ids"] == tokenizer.mask_token_id]
    top5 = [tokenizer.convert_ids_to_tokens(row) for row in logits.topk(5, dim=-1).indices.tolist()]
    in5 = [bool(set(t) & set(it["answers"])) for t, it in zip(top5, items)]
    in1 = [t[0] in it["answers"] for t, it in zip(top5, items)]
    return {"top5": round(sum(in5) / len(items), 4), "top1": round(sum(in1) / len(items), 4), "n": len(items),
            "predictions": {it["sentence"]: t for it, t in zip(items, top5)}}


def evaluate(model, tokenizer, heldout_sentences, agreement_items, cloze_items):
    model.eval()
    return {"heldout_masked_tokens": masked_token_accuracy(model, tokenizer, heldout_sentences),
            "real_agreement": agreement_accuracy(model, tokenizer, agreement_items),
            "grammar_is_are": grammar_is_are(model, tokenizer),
            "cloze": cloze(model, tokenizer, cloze_items)}


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="a BertForMaskedLM checkpoint folder")
    p.add_argument("--text", type=Path, action="append", default=[],
                   help="held-out text from this file instead of the Debian packages")
    p.add_argument("--out", type=Path)
    args = p.parse_args()
    from transformers import AutoTokenizer, BertForMaskedLM

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        _, heldout, _ = lm_text.load_corpus(() if args.text else lm_text.SOURCES, args.text)
    except lm_text.MissingText as e:
        sys.exit(str(e))
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = BertForMaskedLM.from_pretrained(args.model, attn_implementation="eager")
    metrics = evaluate(model, tokenizer, [s.text for s in heldout], read_agreement_items(), read_cloze())
    text = json.dumps(metrics, indent=1)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
