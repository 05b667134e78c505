"""Our top-level package is called `kernels`, like Hugging Face's `kernels` hub package.

transformers probes for that hub package with `is_kernels_available()`: `importlib.util.find_spec("kernels")`
(which finds ours), then the version of the distribution that ships the import name `kernels` (ours,
triton-attention-kernels, or `kernels.__version__` when no metadata exists), which must lie in
[KERNELS_MIN_VERSION, KERNELS_MAX_VERSION). If it did, transformers would `from kernels import
LayerRepository, ...` and every model import would break. These tests check that the probe, run for real
with our package importable, says False, and that small randomly initialised models still build and run.
"""

import importlib.metadata
import importlib.util
import re
import socket
from pathlib import Path

import pytest

transformers = pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")
torch = pytest.importorskip("torch")
import_utils = pytest.importorskip("transformers.utils.import_utils")
from packaging.version import Version  # noqa: E402  (a dependency of transformers)

REPO_ROOT = Path(__file__).resolve().parents[2]
DISTRIBUTION = "triton-attention-kernels"


def _clear_probe_caches():
    """Forget every cached answer of transformers' package probes, so the next call really looks."""
    for name in ("is_kernels_available", "_package_distribution_mapping", "_is_package_available"):
        cache_clear = getattr(getattr(import_utils, name, None), "cache_clear", None)
        if cache_clear is not None:
            cache_clear()


def _min_kernels_version():
    min_version = getattr(import_utils, "KERNELS_MIN_VERSION", None)
    if min_version is None:
        pytest.skip(f"transformers {transformers.__version__} has no KERNELS_MIN_VERSION")
    return Version(min_version)


@pytest.fixture
def ours_importable():
    """Make sure the `kernels` that Python finds is ours, not Hugging Face's hub package."""
    try:
        hub_version = importlib.metadata.version("kernels")
    except importlib.metadata.PackageNotFoundError:
        pass
    else:
        pytest.skip(f"Hugging Face's `kernels` {hub_version} is installed here and owns the import name")
    spec = importlib.util.find_spec("kernels")
    if spec is None or spec.origin is None:
        pytest.fail("our `kernels` package is not importable (no kernels/__init__.py on sys.path)")
    return spec


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection (e.g. a download from the Hub) fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"test tried to open a network connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_is_kernels_available_is_false_with_ours_importable(ours_importable):
    probe = getattr(import_utils, "is_kernels_available", None)
    if probe is None:
        pytest.skip(f"transformers {transformers.__version__} has no is_kernels_available()")
    _clear_probe_caches()

    # The probe's first step sees our package, so the False below really comes from the version check.
    exists, version = import_utils._is_package_available("kernels", return_version=True)
    assert exists, "transformers did not find our `kernels` package"
    assert version == "N/A" or Version(version) < _min_kernels_version(), (
        f"transformers reads version {version} for `kernels`: it would take our package for the hub package"
    )
    assert probe() is False
    # The copy re-exported from transformers.utils is the same cached function.
    assert transformers.utils.is_kernels_available() is False


def test_source_version_below_transformers_kernels_min_version():
    setup_py = REPO_ROOT / "setup.py"
    if not setup_py.is_file():
        pytest.skip("setup.py not found next to tests/ (not running from a source checkout)")
    match = re.search(r'^VERSION = "([^"]+)"', setup_py.read_text(encoding="utf-8"), re.MULTILINE)
    assert match, "setup.py must define VERSION = \"...\" at module level"
    assert Version(match.group(1)) < _min_kernels_version()


def test_installed_version_below_transformers_kernels_min_version():
    try:
        ours = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        pytest.skip(f"{DISTRIBUTION} is not installed (no metadata); run `pip install --no-deps -e .`")
    assert Version(ours) < _min_kernels_version()


def test_tiny_bert_forward(ours_importable, no_network):
    from transformers import BertConfig, BertModel

    _clear_probe_caches()
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=100,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    model = BertModel(config).eval()
    input_ids = torch.randint(0, config.vocab_size, (2, 7))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[1, 4:] = 0  # a padded second sequence
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask)
    assert out.last_hidden_state.shape == (2, 7, config.hidden_size)
    assert torch.isfinite(out.last_hidden_state).all()
    assert import_utils.is_kernels_available() is False


def test_tiny_gpt2_forward(ours_importable, no_network):
    from transformers import GPT2Config, GPT2LMHeadModel

    _clear_probe_caches()
    torch.manual_seed(0)
    config = GPT2Config(vocab_size=100, n_positions=64, n_embd=32, n_layer=2, n_head=2)
    model = GPT2LMHeadModel(config).eval()
    input_ids = torch.randint(0, config.vocab_size, (2, 9))
    with torch.no_grad():
        out = model(input_ids=input_ids, labels=input_ids)
    assert out.logits.shape == (2, 9, config.vocab_size)
    assert torch.isfinite(out.logits).all()
    assert torch.isfinite(out.loss)
    assert import_utils.is_kernels_available() is False
