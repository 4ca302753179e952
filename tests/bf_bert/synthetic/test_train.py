"""bf.opt training of a BF BERT (one jitted step) against torch on the same data and weights."""

import jax
import numpy as np
import torch

import brunoflow as bf
from bf_bert.synthetic.tasks import FirstTokenRepeatedOnce
from bf_bert.synthetic.train import bert_config, make_train_step


def test_bf_opt_training_matches_torch_step_for_step(tmp_path):
    from transformers import BertForSequenceClassification, BFBertForSequenceClassification
    task = FirstTokenRepeatedOnce()
    split = task.generate(640, seed=0)
    config = bert_config(task, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    reference = BertForSequenceClassification(config).double()
    reference.save_pretrained(tmp_path)  # the same initial weights for both
    reference.train()
    torch_opt = torch.optim.Adam(reference.parameters(), lr=1e-3)
    bf_losses, torch_losses = [], []
    with jax.enable_x64(True):
        model = BFBertForSequenceClassification.from_pretrained(tmp_path, dtype="float64")
        model.train()
        opt = bf.opt.Adam(model.parameters(), step_size=1e-3)
        step = make_train_step(model, opt)
        values, state = [p.val for p in model.parameters()], opt.init_state()
        initial = [np.asarray(v) for v in values]
        for k in range(20):
            ids, labels = split.ids[32 * k:32 * k + 32], split.labels[32 * k:32 * k + 32]
            values, state, loss = step(values, state, ids, labels, jax.random.PRNGKey(k))
            bf_losses.append(float(loss))
            batch = torch.from_numpy(ids.astype(np.int64))
            out = reference(input_ids=batch, attention_mask=torch.ones_like(batch),
                            labels=torch.from_numpy(labels.astype(np.int64)))
            torch_opt.zero_grad()
            out.loss.backward()
            torch_opt.step()
            torch_losses.append(out.loss.item())
        assert values[0].dtype == np.float64 and step._cache_size() == 1  # one compile for every step
    np.testing.assert_allclose(bf_losses, torch_losses, rtol=0, atol=1e-5)
    moved = {n: float(np.abs(np.asarray(v) - w).max()) for (n, _), v, w in zip(model.named_parameters(), values, initial)}
    # every weight moved but the key bias: it shifts a query's scores by one constant, which softmax ignores
    still = {n for n, d in moved.items() if d < 1e-4}
    assert still == {"bert.encoder.layer.0.attention.self.key.bias"}, moved
    torch_weights = dict(reference.named_parameters())
    for (name, _), value in zip(model.named_parameters(), values):
        np.testing.assert_allclose(np.asarray(value), torch_weights[name].detach().numpy(), atol=1e-6, err_msg=name)
