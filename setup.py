from setuptools import find_namespace_packages, setup

setup(
    name="brunoflow",
    version="0.1.0",
    description="JAX-backed autodiff whose backward pass runs over semirings (grad, |grad|, entropy, top path)",
    package_dir={"": "src"},
    # Namespace discovery keeps the (later) transformers overlay free of __init__.py files.
    packages=find_namespace_packages(where="src", include=["brunoflow", "brunoflow.*"]),
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.4.30,<0.11",
        "numpy>=1.26,<3",
    ],
    extras_require={
        "test": ["pytest>=8", "torch>=2.2,<2.15"],
        "bench": ["torch>=2.2,<2.15"],
    },
)
