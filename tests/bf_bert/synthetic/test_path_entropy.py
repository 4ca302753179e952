"""Gradient-graph entropy per token: a hand graph with a known answer, and the compiled
per-example program against one eager backprop per example."""

import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from bf_bert.synthetic import path_entropy
from bf_bert.synthetic.entropy_mdl import config_for


def test_token_entropy_of_a_known_graph():
    # y = Σ_t Σ_i w[t, i] · x[t, i]: token t has one path per unit, of weight |w[t, i]|, so its
    # entropy is that of the distribution |w[t]| / Σ|w[t]|, whatever the other tokens hold
    w = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, -1.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0]])
    x = bf.Node(jnp.ones((1, 3, 4)), name="x")
    (x * bf.Node(jnp.asarray(w)[None])).sum().backprop(values_to_compute=("entropy",), inputs=[x])
    got = np.asarray(path_entropy.token_entropy(x))[0]
    p = np.array([0.75, 0.25])
    np.testing.assert_allclose(got, [np.log(4), -(p * np.log(p)).sum(), 0.0], atol=1e-6)


def test_compiled_program_matches_one_eager_backprop_per_example():
    from transformers import BFBertForSequenceClassification
    config = config_for(12, 6, num_hidden_layers=1, hidden_size=8, num_attention_heads=2, intermediate_size=16)
    model = BFBertForSequenceClassification(config)
    rng = np.random.default_rng(0)
    values = [jnp.asarray(rng.normal(0, 0.3, p.shape), p.dtype) for p in model.parameters()]
    for p, v in zip(model.parameters(), values):
        p.val = v
    ids = rng.integers(1, 12, (5, 6)).astype(np.int32)
    labels = np.array([0, 1, 2, 0, 5], np.int32)
    out = path_entropy.example_entropies(model, values, ids, labels, batch_size=3)  # a padded last batch
    assert out["token_entropy"].shape == (5, 6) and out["logits"].shape == (5, 6)
    model.eval()
    for k in (0, 4):  # a full batch's row and the padded batch's
        model.zero_gradients()
        table = model.get_input_embeddings().weight.val
        embeddings = bf.Node(jnp.take(table, ids[k:k + 1], axis=0), name="inputs_embeds")
        result = model(inputs_embeds=embeddings, attention_mask=jnp.ones((1, 6), jnp.int32), labels=labels[k:k + 1])
        result.loss.backprop(values_to_compute=("entropy",), inputs=[embeddings])
        a = np.asarray(embeddings.abs_val_grad[0], np.float64)
        h = np.asarray(embeddings.entropy_wrt_output[0], np.float64)
        # the paper's per-token reading, from the unscaled fields: Σh/Σa + log Σa
        expected = h.sum(-1) / a.sum(-1) + np.log(a.sum(-1))
        np.testing.assert_allclose(out["token_entropy"][k], expected, rtol=1e-4)
        np.testing.assert_allclose(out["loss"][k], float(result.loss.val), rtol=1e-5)
    # many paths per token: far from the single-path entropy of 0
    assert (out["token_entropy"] > 1).all()
