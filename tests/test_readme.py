"""The README's ```python blocks run as written, each in a fresh interpreter.

A fresh interpreter per block, because a block may change process-wide JAX state
(`jax_enable_x64`) and must not lean on names another block defined. Blocks fenced as plain
``` (shell commands, printed output) are not run.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)
BLOCKS = BLOCK.findall(README.read_text())


def test_the_readme_has_python_blocks():
    assert len(BLOCKS) >= 3, "README.md lost its ```python blocks, or they are fenced another way"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_block_runs(code, tmp_path):
    # matplotlib writes its config and font cache under $HOME unless told; keep both in tmp
    env = {**os.environ, "MPLBACKEND": "Agg", "MPLCONFIGDIR": str(tmp_path / "mpl")}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, f"README block failed:\n{code}\n--- stderr ---\n{done.stderr[-4000:]}"
