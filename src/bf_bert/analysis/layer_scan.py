"""The explanation step with BERT's layers as two `lax.scan`s: one layer's code, compiled once.

Unrolled, the step holds each layer's forward and all-semiring backward: XLA compiles (and a
second process loads) six copies of the same code for MiniLM, twelve for BERT-base. Every path
from q to the embeddings crosses each layer's output, and nothing else links a layer to the
layers above it, so the sweep can run a layer at a time: a forward scan keeps each layer's
input; a backward scan rebuilds one layer's graph from its input (the layer's forward runs a
second time, a few percent of the step's work) and continues the sweep from the states carried
at its output (`backprop(seed=...)`), reading the layer's Readout columns there; the
embeddings' graph finishes it. The semirings compose across that cut exactly, so the numbers
are the unrolled step's.
"""

import jax
import jax.numpy as jnp

import brunoflow as bf
from brunoflow.ad.backprop import backprop, states_of

from .program import Output, _last_node_per_module, assemble_read_out, layer_read_out


def scannable(model):
    """Whether `scanned_step` applies: an eval-mode model (dropout would draw its keys once for
    every layer) with at least two layers of identical parameter shapes."""
    layers = list(model.base_model.encoder.layer)
    shapes = [tuple((tuple(p.shape), str(p.dtype)) for p in layer.parameters()) for layer in layers]
    return not model.training and len(layers) > 1 and all(s == shapes[0] for s in shapes)


def scanned_step(model, quantity, has_contrast, values):
    """`Program`'s per-sentence step (same arguments, same Output) with the layers scanned."""
    from ..explain import quantity_at_mask  # explain imports the analysis package: resolved at build time
    bert = model.base_model
    layers = list(bert.encoder.layer)
    template = layers[0]  # runs every layer, with that layer's weights swapped in
    layer_path = f"{model.base_model_prefix}.encoder.layer.0"

    def step(params, ids, mask, token_types, position, target_id, contrast_id):
        with model.using_parameters(params), model.as_root():
            table = model.get_input_embeddings().weight.val
            embeddings = bf.Node(jnp.take(table, ids[None], axis=0), name="inputs_embeds")
            embedded = bert.embeddings(inputs_embeds=embeddings, token_type_ids=token_types[None],
                                       position_ids=jnp.arange(ids.shape[0], dtype=jnp.int32)[None])
            extended_mask = bert.get_extended_attention_mask(mask[None], embedded.dtype)
            weights = [jnp.stack(per_layer) for per_layer in zip(*([p.val for p in layer.parameters()] for layer in layers))]

            def forward(hidden, layer_weights):
                with template.using_parameters(layer_weights):
                    output, _ = template(bf.Node(hidden), extended_mask)
                return output.val, hidden

            last, layer_inputs = jax.lax.scan(forward, embedded.val, weights)
            top = bf.Node(last)
            value = quantity_at_mask(model, top, position, target_id, contrast_id if has_contrast else None, quantity)
            backprop(value, values, inputs=[top])

            def backward(state, scanned):
                layer_weights, hidden = scanned
                with template.using_parameters(layer_weights):
                    layer_input = bf.Node(hidden)
                    output, _ = template(layer_input, extended_mask)
                    backprop(output, values, inputs=[layer_input], seed=state)
                    attention_output = _last_node_per_module(output)[f"{layer_path}.attention.output.LayerNorm"]
                    columns = layer_read_out(layer_input, attention_output, layer_path)
                # the carry keeps its types (a state made from Python ints may come out weakly typed)
                return jax.tree.map(lambda new, old: new.astype(old.dtype), states_of(layer_input, values), state), columns

            state, columns = jax.lax.scan(backward, states_of(top, values), (weights, layer_inputs), reverse=True)
            backprop(embedded, values, inputs=[embeddings], seed=state)
            readout = assemble_read_out(value.val, embeddings, columns)
            return Output(readout, jnp.zeros((0,), jnp.int32), jnp.zeros((0,), embeddings.dtype))

    step.__name__ = step.__qualname__ = f"explain_{quantity}_scanned"
    return step
