"""The explanation figure: every number says what it is, no text overlaps, any script draws.

Explanations here are made up (seeded numbers, no model): the figure only reads their fields.
"""

import warnings

import matplotlib.pyplot as plt
import matplotlib.text
import numpy as np
import pytest

from bf_bert.explanation import ATTENTION_BRANCHES, MLP_BRANCHES, Explanation, LayerAttribution, TokenAttribution
from bf_bert.plots import explanation_figure, plot_explanation

LATIN = ["[CLS]", "the", "keys", "to", "the", "cabinet", "[MASK]", "on", "the", "table", ".", "[SEP]"]


def made_up(tokens, layers=6, mask=None):
    rng = np.random.default_rng(0)
    mask = tokens.index("[MASK]") if mask is None else mask
    n = len(tokens)
    layer_list = []
    for layer in range(layers):
        attention, mlp = rng.dirichlet(np.ones(4)), rng.dirichlet(np.ones(2))
        layer_list.append(LayerAttribution(
            layer=layer, module_path=f"bert.encoder.layer.{layer}",
            attention_share=dict(zip(ATTENTION_BRANCHES, attention)),
            attention_entropy=dict(zip(ATTENTION_BRANCHES, 100 * attention)),
            mlp_share=dict(zip(MLP_BRANCHES, mlp)), mlp_entropy=dict(zip(MLP_BRANCHES, 100 * mlp)),
            oplus=["skip"] * n, bucket_sum=["skip"] * n, buckets=[dict.fromkeys(ATTENTION_BRANCHES, 0.0)] * n,
            top_path_token=mask, top_path_branch="skip"))
    return Explanation(text=" ".join(tokens[1:-1]), tokens=tokens, mask_position=mask, target="is", contrast="are",
                       quantity="logit", value=-0.9, layers=layer_list,
                       tokens_attribution=TokenAttribution(*(rng.random(n) * 100 for _ in range(6))))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def texts(figure):
    return [t.get_text() for t in figure.findobj(matplotlib.text.Text) if t.get_text()]


def test_every_number_and_axis_says_what_it_is():
    figure = explanation_figure(made_up(LATIN))
    saliency, heatmap, top_path, colorbar = figure.axes
    assert "path entropy" in saliency.get_xlabel() and "nats" in saliency.get_xlabel()
    assert "share" in colorbar.get_ylabel()
    assert "sum to 1" in heatmap.get_title()
    assert top_path.get_xlabel() and top_path.get_ylabel()
    # why skip can hold ~0 of the mass yet the top path: many paths vs one path
    assert any("many paths" in t.lower() and "skip" in t for t in texts(figure))


@pytest.mark.parametrize("tokens", [LATIN, ["[CLS]"] + ["antidisestablishment", "##arian", "##ism"] * 10
                                    + ["[MASK]", "[SEP]"]])
def test_no_two_texts_overlap(tokens):
    figure = explanation_figure(made_up(tokens))
    renderer = figure.canvas.get_renderer()
    figure.canvas.draw()
    boxes = [(t.get_text(), t.get_rotation(), t.get_window_extent(renderer))
             for t in figure.findobj(matplotlib.text.Text) if t.get_text() and t.get_visible()]
    # two rotated labels' upright boxes overlap where the labels do not: those pairs are left out
    overlaps = [(a, b) for i, (a, turn_a, box_a) in enumerate(boxes) for b, turn_b, box_b in boxes[i + 1:]
                if box_a.overlaps(box_b) and not (turn_a and turn_b)]
    assert overlaps == []


def test_greek_cyrillic_and_symbols_draw_with_an_installed_font(tmp_path):
    # "⌚" is not in DejaVu Sans; matplotlib's own STIX fonts have it
    tokens = ["[CLS]", "η", "γατα", "кошка", "⌚", "[MASK]", "[SEP]"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explanation_figure(made_up(tokens)).canvas.draw()  # unlike plot_explanation, hides no glyph warning
        plot_explanation(made_up(tokens), tmp_path / "e.png")
    assert [str(w.message) for w in caught] == []
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_a_script_no_installed_font_has_still_plots_with_one_warning(tmp_path):
    tokens = ["[CLS]", "猫", "在", "[MASK]", "上", "[SEP]"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plot_explanation(made_up(tokens), tmp_path / "e.png")
    messages = [str(w.message) for w in caught]
    assert len(messages) <= 1  # none where a CJK font is installed
    assert all("no installed font has glyphs for" in m and "猫" in m for m in messages)
    assert (tmp_path / "e.png").read_bytes()[:4] == b"\x89PNG"


def test_dollar_signs_are_text_not_math(tmp_path):
    # as mathtext, "$ x ^ ^ $" is a parse error: the plot must draw the sentence as written
    plot_explanation(made_up(["[CLS]", "$", "x", "^", "^", "$", "[MASK]", "[SEP]"]), tmp_path / "e.png")
    assert (tmp_path / "e.png").stat().st_size > 0
