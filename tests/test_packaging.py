"""The wheel installs the BF overlay next to transformers' own files and never over them (docs/architecture.md §5).

transformers exports a module's `__all__` when its folder scan finds the module, so the wheel
ships bare files: no `transformers/**/__init__.py` (it would replace transformers' own) and no
file the transformers distribution owns.
"""

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
OVERLAY = {"transformers/bf_activations.py", "transformers/bf_checkpoint_io.py", "transformers/modeling_bf_buckets.py",
           "transformers/modeling_bf_outputs.py", "transformers/modeling_bf_utils.py",
           "transformers/models/auto/modeling_bf_auto.py", "transformers/models/bert/modeling_bf_bert.py"}


@pytest.fixture(scope="module")
def wheel_files(tmp_path_factory):
    """Names in the wheel built from a clean copy of the sources (a stale build/ could hide or add files)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("setup.py", "setup.cfg", "pyproject.toml", "MANIFEST.in"):
        if (REPO / name).exists():
            shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    # tests never reach the network: build with this environment's setuptools, not a downloaded one
    isolation = ["--no-build-isolation"] if importlib.util.find_spec("setuptools") else []
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", *isolation, "-w", str(out),
                            "-q"], capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = out.glob("brunoflow-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        return set(archive.namelist())


def test_wheel_ships_the_overlay_and_brunoflow(wheel_files):
    assert OVERLAY <= wheel_files
    assert "brunoflow/__init__.py" in wheel_files
    assert not any("__pycache__" in name or name.endswith(".pyc") for name in wheel_files)


def test_wheel_has_no_transformers_init_files(wheel_files):
    assert [n for n in wheel_files if n.startswith("transformers/") and n.endswith("__init__.py")] == []
    assert {n for n in wheel_files if n.startswith("transformers/")} == OVERLAY


def test_wheel_overwrites_no_file_of_the_transformers_distribution(wheel_files):
    owned = {path.as_posix() for path in importlib.metadata.files("transformers")}
    assert "transformers/models/bert/modeling_bert.py" in owned  # the listing is the real one
    assert wheel_files & owned == set()


def test_the_installed_distribution_owns_only_the_overlay_under_transformers():
    """What `pip install .` really put there (a stale build/lib can add files the clean wheel lacks)."""
    installed = {p.as_posix() for p in importlib.metadata.files("brunoflow")}
    assert {n for n in installed if n.startswith("transformers/") and n.endswith(".py")} == OVERLAY
    assert installed & {p.as_posix() for p in importlib.metadata.files("transformers")} == set()


def test_the_bf_names_import_from_transformers():
    from transformers import BFAutoModelForMaskedLM, BfBertModel, BFBertForMaskedLM, BFBertModel

    import transformers
    assert BfBertModel is BFBertModel
    package = Path(transformers.__file__).parent
    for cls in (BFBertForMaskedLM, BFAutoModelForMaskedLM):  # next to transformers' own modules
        assert Path(sys.modules[cls.__module__].__file__).parent.parent.parent == package


def test_the_installed_copy_is_this_tree():
    """Tests run against the installed copy (non-editable); a stale one would test old code."""
    import brunoflow
    import transformers
    stale = []
    for package in (brunoflow, transformers):
        site = Path(package.__file__).parent.parent
        for path in sorted((REPO / "src" / package.__name__).rglob("*.py")):
            name = path.relative_to(REPO / "src")
            if not (site / name).is_file() or (site / name).read_bytes() != path.read_bytes():
                stale.append(str(name))
    assert stale == [], f"stale install; run {sys.executable} -m pip install --no-deps --force-reinstall {REPO}"
