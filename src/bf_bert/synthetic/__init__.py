"""Synthetic validation of semiring backprop (Du et al., ACL 2023, §5.1): train a small BERT on a
task whose solution forces an attention pattern, then check where its top gradient paths go.

    tasks.py     seeded generators with known labels and token types
    train.py     bf.opt training with a jitted step, and the torch reference training
    top_path.py  per token type × branch credit (oplus, bucket_sum on max_grad; exact max_path)
    report.py    tables, the bar figure, report.md beside the paper's numbers
    reproduce.py the resumable `bf-bert reproduce synthetic-top-path` run
"""

# The §5.1 run: the paper's data sizes, batch size and learning rate; 40 epochs reach 1000/1000
# held out here (README, "Reproducing §5.1"). Kept import-free, so the CLI's parser stays fast.
DEFAULTS = dict(task="FirstTokenRepeatedOnce", train_size=10_000, heldout_size=1_000, epochs=40, batch_size=32,
                learning_rate=1e-3, seed=0)
