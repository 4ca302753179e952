"""The explanation step with BERT's layers as two `lax.scan`s: one layer's code, compiled once.

Unrolled, the step holds each layer's forward and all-semiring backward: XLA compiles (and a
second process loads) six copies of the same code for MiniLM, twelve for BERT-base. Every path
from q to the embeddings crosses each layer's output, and nothing else links a layer to the
layers above it, so the sweep can run a layer at a time: a forward scan keeps each layer's
input and every value its graph made (`brunoflow.ad.replay.record`); a backward scan rebuilds
one layer's graph from those values (`replay.rebuild`: no op runs again) and continues the sweep
from the states carried at its output (`backprop(seed=...)`), reading the layer's Readout
columns there; the embeddings' graph finishes it. The semirings compose across that cut
exactly, so the numbers are the unrolled step's.
"""

import jax
import jax.numpy as jnp
import numpy as np

import brunoflow as bf
from brunoflow.ad.backprop import backprop, states_of
from brunoflow.ad.node import on_cpu
from brunoflow.ad.replay import mark, rebuild, record
from brunoflow.net.module import parameter_values

from .program import Output, last_node_per_module, assemble_read_out, layer_read_out


def scannable(model):
    """Whether `scanned_step` applies: an eval-mode model (dropout would draw its keys once for
    every layer) with at least two layers of identical parameter shapes."""
    layers = list(model.base_model.encoder.layer)
    shapes = [tuple((tuple(p.shape), str(p.dtype)) for p in layer.parameters()) for layer in layers]
    return not model.training and len(layers) > 1 and all(s == shapes[0] for s in shapes)


class StackedWeights:
    """params (`parameters()` order) → what the scanned step takes: (the values of the parameters
    outside the layers, each layer parameter stacked over the layers). Stacking inside the
    program copied every layer's weights on every call (~0.3 GB for BERT-base); here it runs
    once per set of weights (kept for the last params seen, by identity)."""

    def __init__(self, model):
        params = list(model.parameters())
        index = {id(p): k for k, p in enumerate(params)}
        per_layer = [[index[id(p)] for p in layer.parameters()] for layer in model.base_model.encoder.layer]
        in_layers = {k for layer in per_layer for k in layer}
        self.outside = [k for k in range(len(params)) if k not in in_layers]
        self.columns = list(zip(*per_layer))  # per parameter of a layer: its index in every layer
        self._last = None

    def __call__(self, params):
        if self._last is not None and len(self._last[0]) == len(params) and all(
                a is b for a, b in zip(self._last[0], params)):
            return self._last[1]
        arranged = ([params[k] for k in self.outside], [_stack([params[k] for k in column]) for column in self.columns])
        self._last = (list(params), arranged)
        return arranged


def _stack(arrays):
    """jnp.stack, on the host for arrays there: eagerly, jnp.stack compiles a kernel per weight shape
    (five for BERT, ~0.3 s of a first explanation)."""
    if all(on_cpu(a) for a in arrays):
        return jnp.asarray(np.stack([np.asarray(a) for a in arrays]))
    return jnp.stack(arrays)


def scanned_step(model, quantity, has_contrast, values):
    """`Program`'s per-sentence step (same arguments, but the weights as `StackedWeights` gives
    them; same Output) with the layers scanned."""
    from ..explain import quantity_at_mask  # explain imports the analysis package: resolved at build time
    bert = model.base_model
    layers = list(bert.encoder.layer)
    template = layers[0]  # runs every layer, with that layer's weights swapped in
    layer_path = f"{model.base_model_prefix}.encoder.layer.0"
    params = list(model.parameters())
    outside = [params[k] for k in StackedWeights(model).outside]
    layer_params = list(template.parameters())
    modules = dict(model.named_modules())
    module_paths = {id(module): path for path, module in modules.items()}

    def step(weights, ids, mask, token_types, position, target_id, contrast_id):
        outside_values, stacked = weights
        with parameter_values(outside, outside_values), model.as_root():
            table = model.get_input_embeddings().weight.val
            embeddings = bf.Node(jnp.take(table, ids[None], axis=0), name="inputs_embeds")
            embedded = bert.embeddings(inputs_embeds=embeddings, token_type_ids=token_types[None],
                                       position_ids=jnp.arange(ids.shape[0], dtype=jnp.int32)[None])
            extended_mask = bert.get_extended_attention_mask(mask[None], embedded.dtype)

            recorded = {}

            def forward(hidden, layer_weights):
                with template.using_parameters(layer_weights):
                    layer_input = bf.Node(hidden)
                    first = mark()
                    output, _ = template(layer_input, extended_mask)
                    recorded["layer"], consts, made = record(output, layer_params, [layer_input], first, module_paths)
                return output.val, (hidden, [n.val for n in made], consts)

            last, saved = jax.lax.scan(forward, embedded.val, stacked)
            top = bf.Node(last)
            value = quantity_at_mask(model, top, position, target_id, contrast_id if has_contrast else None, quantity)
            backprop(value, values, inputs=[top])

            def backward(state, scanned):
                layer_weights, (hidden, node_values, consts) = scanned
                with template.using_parameters(layer_weights):
                    layer_input = bf.Node(hidden)
                    output, _ = rebuild(recorded["layer"], layer_params, [layer_input], modules, consts, {}, [],
                                        lambda k, recipe: node_values[k])
                    backprop(output, values, inputs=[layer_input], seed=state)
                    attention_output = last_node_per_module(output)[f"{layer_path}.attention.output.LayerNorm"]
                    columns = layer_read_out(layer_input, attention_output, layer_path)
                return states_of(layer_input, values), columns  # kernels keep every state's dtype (_keep_dtype)

            state, columns = jax.lax.scan(backward, states_of(top, values), (stacked, saved), reverse=True)
            backprop(embedded, values, inputs=[embeddings], seed=state)
            readout = assemble_read_out(value.val, embeddings, columns)
            return Output(readout, jnp.zeros((0,), jnp.int32), jnp.zeros((0,), embeddings.dtype))

    step.__name__ = step.__qualname__ = f"explain_{quantity}_scanned"
    return step
