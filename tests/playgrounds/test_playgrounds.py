"""Every playground runs top to bottom as a script (each checks what it shows with asserts),
so none goes stale as the library changes."""

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

PLAYGROUNDS = Path(__file__).parents[2] / "playgrounds"
LIBRARY_MODULES = {"scratch_bert.py"}  # imported by playgrounds, not one itself
SCRIPTS = sorted(p.name for p in PLAYGROUNDS.glob("*.py") if p.name not in LIBRARY_MODULES)


def test_every_playground_is_collected():
    assert {"bert_from_scratch.py", "bert_embeddings_playground.py", "bert_self_attention_playground.py",
            "bert_attention_playground.py", "semiring_backprop_playground.py",
            "explain_agreement_playground.py"} <= set(SCRIPTS)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Run every playground, two at a time (each is mostly single-threaded XLA compiling)."""
    def run(script):
        tmp = tmp_path_factory.mktemp(script.removesuffix(".py"))
        env = dict(os.environ, MPLBACKEND="Agg", PLAYGROUND_OUT=str(tmp / "out"),
                   JAX_COMPILATION_CACHE_DIR=str(tmp / "jax_cache"), BF_BERT_CACHE=str(tmp / "bf_cache"))
        return subprocess.run([sys.executable, str(PLAYGROUNDS / script)], cwd=PLAYGROUNDS.parent, env=env,
                              capture_output=True, text=True, timeout=900)

    # the longest first, so the two workers finish together
    order = sorted(SCRIPTS, key=lambda s: s != "explain_agreement_playground.py")
    with ThreadPoolExecutor(max_workers=2) as pool:
        return dict(zip(order, pool.map(run, order)))


@pytest.mark.parametrize("script", SCRIPTS)
def test_playground_runs(script, runs):
    done = runs[script]
    assert done.returncode == 0, f"{script} failed:\n{done.stderr[-3000:]}"
    assert "all checks passed" in done.stdout
