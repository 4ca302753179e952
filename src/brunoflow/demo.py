"""`make demo` (until BERT lands): one backprop over every semiring on a small network.

A 2-layer tanh network scores 4 input features; one sweep fills grad, |grad|, entropy
and the max/min-product with back-pointers, and the table follows each feature's top
gradient path all the way to the output.
"""

import jax
import jax.numpy as jnp

import brunoflow as bf


def build(seed=0):
    k1, k2, k3 = jax.random.split(jax.random.PRNGKey(seed), 3)
    x = bf.Node(jax.random.normal(k1, (1, 4)), name="x")
    w1 = bf.Parameter(jax.random.normal(k2, (4, 3)) * 0.8, name="w1")
    w2 = bf.Parameter(jax.random.normal(k3, (3, 1)), name="w2")
    score = (bf.func.tanh(x @ w1) @ w2).sum()
    return x, score


def _path_text(hops):
    return " → ".join(f"{h.node.name or h.node.op.name}{list(h.index)}" for h in hops)


def main():
    x, score = build()
    score.backprop()  # grad, max_grad, abs_val_grad and entropy in one sweep
    entropy = x.compute_entropy().val
    hi, _ = x.max_grad_of_output_wrt_node
    print(f"score = {float(score.val):.4f}   (network: x[1,4] @ w1[4,3] → tanh → @ w2[3,1] → sum)\n")
    print(f"{'feature':<8}{'x':>8}{'grad':>9}{'|grad|':>9}{'entropy':>9}{'max':>9}   top gradient path")
    for j in range(x.shape[1]):
        e = (0, j)
        print(f"x[0,{j}]  {float(x.val[e]):8.3f}{float(x.grad[e]):9.4f}{float(x.abs_val_grad[e]):9.4f}"
              f"{float(entropy[e]):9.4f}{float(hi[e]):9.4f}   {_path_text(bf.top_path(x, e))}")
    print("\nentropy: Shannon entropy (nats) of the gradient paths from the feature to the score, "
          "each path weighted by its product of |partials|;\nmax: operation-granularity max-product "
          "(docs/architecture.md §2); the path follows its back-pointers.")


if __name__ == "__main__":
    main()
