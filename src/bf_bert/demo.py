"""`make demo`: fill-mask on agreement sentences, then one explanation, on the embedded default model.

Writes demo_out/explanation.json and demo_out/explanation.png. The model is all-MiniLM-L6-v2 with
top layers and an MLM head this project trained on real English (see bf_bert.default_model): a
small language model, not BERT-base.
"""

import os
import sys
import time

SENTENCES = [
    "The keys to the cabinet [MASK] on the table.",
    "The key to the cabinets [MASK] on the table.",
    "The authors that the critic praises [MASK] famous.",
    "The dog near the houses [MASK] sleeping.",
]
EXPLAINED = SENTENCES[0]


def main(out_dir="demo_out"):
    from .compile_cache import enable_compilation_cache
    enable_compilation_cache()  # before anything compiles: JAX fixes its cache at the first compile

    from transformers import AutoTokenizer, BFBertForMaskedLM

    from .default_model import NOTE, default_model_path
    from .explain import explain
    from .fill_mask import BFFillMaskPipeline

    start = time.time()
    print(f"model: {NOTE}\n")
    path = default_model_path()
    model = BFBertForMaskedLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    fill = BFFillMaskPipeline(model, tokenizer)
    print("fill-mask, is vs are (scores over the whole vocabulary):")
    for sentence, result in zip(SENTENCES, fill(SENTENCES, targets=["is", "are"])):
        best = " / ".join(f"{r['token_str']} {r['score']:.3f}" for r in result)
        print(f"  {sentence:<52} {best}")
    print("\ntop 3 for the first sentence:")
    for r in fill(SENTENCES[0], top_k=3):
        print(f"  {r['score']:.3f}  {r['sequence']}")
    print(f"\nexplain: logit(is) − logit(are) for {EXPLAINED!r}\n")
    explanation = explain(model, tokenizer, EXPLAINED, target="is", contrast="are")
    print(explanation.summary())
    os.makedirs(out_dir, exist_ok=True)
    explanation.to_json(os.path.join(out_dir, "explanation.json"))
    explanation.plot(os.path.join(out_dir, "explanation.png"))
    print(f"\nwrote {out_dir}/explanation.json and {out_dir}/explanation.png "
          f"({time.time() - start:.0f} s; the first run spends most of it compiling kernels, later runs reuse them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
