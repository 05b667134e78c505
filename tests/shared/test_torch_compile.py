"""torch.compile over our ops and modules: the custom ops pass torch.library's checks, and compiled
code traces with no graph break (fullgraph=True), runs the fused kernels (the custom ops are in
the graph, not a torch fallback) and gives eager's outputs and gradients, dropout included.

Compiled with the "eager" and "aot_eager" backends: the CPU here runs the kernels in Triton's
interpreter, and these backends need no Inductor code generation. Shapes are tiny on purpose.
Seeds stay 0-d int64 CPU tensors on every device (see kernels/shared/custom_ops.py).
"""
import pytest
import torch
import torch.nn.functional as F
import torch.utils._python_dispatch

import kernels
from support.devices import DEVICE
from kernels.sdpa import custom_ops as attention_ops
from kernels.positional import custom_ops as positional_ops

BACKENDS = ["eager", "aot_eager"]


@pytest.fixture(autouse=True)
def fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


class GraphOps:
    """A compile backend that records the ops of each traced graph, then runs it as dynamo's
    "eager" or "aot_eager" backend would."""

    def __init__(self, backend: str):
        self.backend, self.targets = backend, []

    def __call__(self, graph_module, example_inputs):
        self.targets += [str(node.target) for node in graph_module.graph.nodes if node.op == "call_function"]
        return torch._dynamo.lookup_backend(self.backend)(graph_module, example_inputs)

    def ran(self, op_name: str) -> bool:
        return any(op_name in target for target in self.targets)


def compiled(fn, backend: str, expected_op: str):
    """fn compiled with fullgraph=True (a graph break raises); asserts `expected_op` was traced."""
    recorder = GraphOps(backend)
    compiled_fn = torch.compile(fn, fullgraph=True, backend=recorder)

    def run(*args):
        out = compiled_fn(*args)
        assert recorder.ran(expected_op), f"{expected_op} not in the traced graph: {recorder.targets}"
        return out
    return run


def leaves(*tensors):
    return [t.detach().clone().requires_grad_() for t in tensors]


def outputs_and_grads(fn, *inputs):
    """fn(*inputs) and the gradients of a fixed random projection of it w.r.t. the inputs."""
    inputs = leaves(*inputs)
    out = fn(*inputs)
    weights = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=out.dtype).to(out.device)
    (out * weights).sum().backward()
    return out.detach(), [x.grad for x in inputs]


def assert_same(eager, compiled_result):
    (out, grads), (out_c, grads_c) = eager, compiled_result
    torch.testing.assert_close(out_c, out, rtol=0, atol=0)
    for grad, grad_c in zip(grads, grads_c):
        torch.testing.assert_close(grad_c, grad, rtol=0, atol=0)


def qkv(heads_q=2, heads_kv=2, n_q=12, n_k=9, head_dim=16):
    shapes = (1, heads_q, n_q, head_dim), (1, heads_kv, n_k, head_dim), (1, heads_kv, n_k, head_dim)
    return tuple(torch.randn(shape, device=DEVICE) for shape in shapes)


# --- torch.library.opcheck: schema, fake tensors (shapes, dtypes, strides), autograd, AOT dispatch ---

def test_opcheck_attention_forward_with_broadcast_mask_and_dropout():
    q, k, v = leaves(*qkv())
    mask = (torch.rand(1, 1, 1, 9, device=DEVICE) > 0.3).expand(1, 2, 12, 9)  # stride-0 broadcast dims
    torch.library.opcheck(attention_ops.attention_forward, (q, k, v, mask, False, 0.25, 0.3, torch.tensor(5), True))


def test_opcheck_attention_forward_causal_gqa_without_lse():
    q, k, v = qkv(heads_q=4, heads_kv=2)
    torch.library.opcheck(attention_ops.attention_forward, (q, k, v, None, True, 0.25, 0.0, None, False))


def test_opcheck_attention_backward():
    """With the float mask's gradient (mask_grad=True, the last argument): a dense (B, Hq, Nq, Nk) output."""
    q, k, v = qkv()
    additive = torch.randn(1, 1, 12, 9, device=DEVICE).expand(1, 2, 12, 9)
    out, lse = attention_ops.attention_forward(q, k, v, additive, False, 0.25, 0.0, None, True)
    args = (torch.randn_like(out), q, k, v, out, lse, additive, False, 0.25, 0.0, None, None, None, None, None, None,
            True)
    torch.library.opcheck(attention_ops.attention_backward, args)


def test_opcheck_attention_ops_with_the_score_variants():
    """The five trailing variant arguments (window sides, soft cap, ALiBi slopes, sinks) through the
    schema, fake tensors, autograd registration and AOT dispatch, forward and backward."""
    q, k, v = leaves(*qkv(n_q=12, n_k=12))
    sinks = torch.randn(2, device=DEVICE, requires_grad=True)
    slopes = torch.rand(1, 2, device=DEVICE)
    variants = (3, None, 5.0, slopes, sinks)
    torch.library.opcheck(attention_ops.attention_forward, (q, k, v, None, True, 0.25, 0.0, None, True, *variants))
    mask = (torch.rand(1, 1, 1, 12, device=DEVICE) > 0.3).expand(1, 2, 12, 12)
    windowed = (2, 4, None, None, sinks)
    torch.library.opcheck(attention_ops.attention_forward,
                          (q, k, v, mask, False, 0.25, 0.3, torch.tensor(5), True, *windowed))
    with torch.no_grad():
        out, lse = attention_ops.attention_forward(q, k, v, None, True, 0.25, 0.0, None, True, *variants)
    args = (torch.randn_like(out), q.detach(), k.detach(), v.detach(), out, lse, None, True, 0.25, 0.0, None,
            3, None, 5.0, slopes, sinks.detach())
    torch.library.opcheck(attention_ops.attention_backward, args)


def test_opcheck_positional_ops():
    x = torch.randn(5, 2, 24, device=DEVICE).transpose(0, 1).requires_grad_()  # (B, N, d), non-contiguous
    ids = torch.randint(0, 50, (1, 5), device=DEVICE).expand(2, 5)
    torch.library.opcheck(positional_ops.positional_encoding, (x, ids, 0, 2.0, 0.25, torch.tensor(3)))
    torch.library.opcheck(positional_ops.positional_encoding, (x, None, 7, 1.0, 0.0, None))
    weight = torch.randn(11, 24, requires_grad=True, device=DEVICE)
    tokens = torch.randint(0, 11, (2, 5), device=DEVICE)
    torch.library.opcheck(positional_ops.sinusoidal_embedding, (weight, tokens, None, 3, 4.0, 0.25, torch.tensor(9), 0))
    torch.library.opcheck(positional_ops.scaled_dropout, (x.detach(), 2.0, 0.25, torch.tensor(3)))


def test_fake_attention_output_is_laid_out_batch_seq_heads():
    from torch._subclasses.fake_tensor import FakeTensorMode
    with FakeTensorMode():
        q, k, v = qkv(n_q=12)
        out, lse = attention_ops.attention_forward(q, k, v, None, False, 0.25, 0.0, None, True)
    assert out.shape == (1, 2, 12, 16) and out.transpose(1, 2).is_contiguous()
    assert lse.shape == (1, 2, 12) and lse.dtype == torch.float32 and lse.is_contiguous()


# --- compiled functions and modules vs eager ---

def attention_case(name):
    """(inputs, attention kwargs) for one mask / layout variant."""
    if name == "gqa":
        return qkv(heads_q=4, heads_kv=2), dict(enable_gqa=True, is_causal=True)
    if name == "causal":
        return qkv(), dict(is_causal=True)
    if name == "bool_mask":
        return qkv(), dict(attn_mask=torch.rand(1, 1, 12, 9, device=DEVICE) > 0.3)
    # additive, broadcast over batch and heads, and an input: its gradient is compared too
    return (*qkv(), torch.randn(12, 9, device=DEVICE)), {}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", ["bool_mask", "additive_mask", "causal", "gqa"])
def test_compiled_attention_forward_and_backward_equal_eager(case, backend):
    inputs, kwargs = attention_case(case)

    def fn(q, k, v, *additive_mask):
        return kernels.attention(q, k, v, *additive_mask, **kwargs)
    assert_same(outputs_and_grads(fn, *inputs),
                outputs_and_grads(compiled(fn, backend, "attention_forward"), *inputs))


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_dropout_repeats_eager_mask_with_the_same_seed(backend):
    inputs = qkv()

    def fn(q, k, v):
        return kernels.attention(q, k, v, dropout_p=0.4)
    torch.manual_seed(1)
    eager = outputs_and_grads(fn, *inputs)
    compiled_fn = compiled(fn, backend, "attention_forward")
    torch.manual_seed(1)
    assert_same(eager, outputs_and_grads(compiled_fn, *inputs))
    torch.manual_seed(2)  # another seed, another mask: the compiled graph draws the seed on each call
    assert not torch.equal(outputs_and_grads(compiled_fn, *inputs)[0], eager[0])


def test_compiled_rank3_inference_skips_the_lse():
    q, k, v = (t[:, 0] for t in qkv())
    fn = compiled(lambda q, k, v: kernels.attention(q, k, v, is_causal=True), "aot_eager", "attention_forward")
    with torch.no_grad():
        torch.testing.assert_close(fn(q, k, v), kernels.attention(q, k, v, is_causal=True), rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_multi_head_attention_module_equals_eager(backend):
    model = kernels.MultiHeadAttention(32, 4).to(DEVICE)
    x, memory = torch.randn(2, 7, 32, device=DEVICE), torch.randn(2, 5, 32, device=DEVICE)
    mask = (torch.rand(2, 1, 1, 5, device=DEVICE) > 0.2).int()  # the course's convention: 0 masks a key out

    def fn(x, memory):
        return model(x, memory, memory, mask)
    eager = outputs_and_grads(fn, x, memory)
    eager_weight_grad = model.query_linear.weight.grad.clone()
    model.zero_grad()
    assert_same(eager, outputs_and_grads(compiled(fn, backend, "attention_forward"), x, memory))
    torch.testing.assert_close(model.query_linear.weight.grad, eager_weight_grad, rtol=0, atol=0)


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_positional_encoder_with_dropout_equals_eager(backend):
    encoder = kernels.PositionalEncoder(24, dropout=0.3, scale_input=True).to(DEVICE).train()

    def fn(x):
        return encoder(x, position_offset=5)
    x = torch.randn(2, 6, 24, device=DEVICE)
    torch.manual_seed(3)
    eager = outputs_and_grads(fn, x)
    compiled_fn = compiled(fn, backend, "positional_encoding")
    torch.manual_seed(3)
    assert_same(eager, outputs_and_grads(compiled_fn, x))


@pytest.mark.parametrize("backend", BACKENDS)
def test_compiled_sinusoidal_embedding_equals_eager(backend):
    embedding = kernels.SinusoidalEmbedding(13, 24, padding_idx=0, dropout=0.2, device=DEVICE).train()
    tokens = torch.randint(0, 13, (2, 6), device=DEVICE)
    position_ids = torch.arange(6, device=DEVICE).unsqueeze(0)

    def run(fn):
        torch.manual_seed(4)
        embedding.zero_grad()
        out = fn(tokens)
        out.pow(2).sum().backward()
        return out.detach(), embedding.weight.grad.clone()

    def fn(ids):
        return embedding(ids, position_ids=position_ids)
    out, grad = run(fn)
    out_c, grad_c = run(compiled(fn, backend, "sinusoidal_embedding"))
    torch.testing.assert_close(out_c, out, rtol=0, atol=0)
    torch.testing.assert_close(grad_c, grad)  # index_add_ sums in a nondeterministic order on CUDA
    assert grad[0].abs().sum() == 0


def test_compiled_inplace_encoding_writes_into_x():
    x = torch.randn(2, 5, 16, device=DEVICE)
    expected = kernels.add_positional_encoding(x.clone())
    fn = compiled(lambda x: kernels.add_positional_encoding(x, inplace=True), "aot_eager", "positional_encoding")
    out = fn(x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(x, expected, rtol=0, atol=0)


# --- eager behaviour through the custom ops ---

def test_eager_passes_the_broadcast_mask_to_the_kernel_without_a_copy(monkeypatch):
    seen = []
    launch = attention_ops.launch_forward

    def spy(q, k, v, mask, *args, **kwargs):
        seen.append(mask)
        return launch(q, k, v, mask, *args, **kwargs)
    monkeypatch.setattr(attention_ops, "launch_forward", spy)
    q, k, v = qkv()
    key_padding = torch.rand(1, 1, 1, 9, device=DEVICE) > 0.3
    kernels.attention(q, k, v, attn_mask=key_padding, backend="triton")
    assert seen[0].shape == (1, 2, 12, 9) and seen[0].stride()[1:3] == (0, 0)
    assert seen[0].data_ptr() == key_padding.data_ptr()


class _RecordedOps(torch.utils._python_dispatch.TorchDispatchMode):
    """A dispatch mode (as FlopCounterMode or a profiler's is) that records the ops it sees."""

    def __init__(self):
        super().__init__()
        self.names = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(str(func.overloadpacket))
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("grad", [False, True], ids=["inference", "training"])
def test_eager_calls_skip_the_dispatcher_only_where_nothing_must_see_the_op(grad, monkeypatch):
    """An inference call on plain tensors runs the op's body directly (no torch.ops layers: host time);
    a call that needs a gradient, or under a dispatch mode, goes through the op, which they must see."""
    q, k, v = (tensor.requires_grad_(grad) for tensor in qkv())
    dispatched = []
    op = attention_ops.attention_forward

    def spy(*args):
        dispatched.append(True)
        return op(*args)
    monkeypatch.setattr(attention_ops, "attention_forward", spy)
    expected = kernels.attention(q, k, v, backend="reference")
    torch.testing.assert_close(kernels.attention(q, k, v, backend="triton"), expected)
    assert dispatched == ([True] if grad else [])
    with _RecordedOps() as recorded:
        torch.testing.assert_close(kernels.attention(q, k, v, backend="triton"), expected)
    assert "triton_attention_kernels.attention_forward" in recorded.names
    if not grad:  # torch.jit.trace records the op, not the launcher's inside (which would drop the kernel)
        traced = torch.jit.trace(lambda *qkv: kernels.attention(*qkv, backend="triton"), (q, k, v), check_trace=False)
        assert "triton_attention_kernels::attention_forward" in str(traced.graph)
        dispatched.clear()  # under vmap the inputs are functorch wrappers: the op's batching rule must run
        batched = torch.func.vmap(lambda *qkv: kernels.attention(*qkv, backend="triton"))(q, k, v)
        torch.testing.assert_close(batched, expected)
        assert dispatched == [True]


def test_record_backends_counts_eager_calls_only():
    q, k, v = qkv()
    fn = compiled(lambda q, k, v: kernels.attention(q, k, v), "eager", "attention_forward")
    with kernels.record_backends() as ran:
        eager = kernels.attention(q, k, v)
        torch.testing.assert_close(fn(q, k, v), eager, rtol=0, atol=0)
    assert ran == ["triton"]


def test_compiled_torch_backend_is_plain_sdpa():
    q, k, v = qkv()
    fn = compiled(lambda q, k, v: kernels.attention(q, k, v, backend="torch"), "aot_eager",
                  "scaled_dot_product_attention")
    torch.testing.assert_close(fn(q, k, v), F.scaled_dot_product_attention(q, k, v))


@pytest.mark.parametrize("family", ["EncoderClassifier", "DecoderOnlyLM", "EncoderDecoderModel"])
def test_compiled_model_families_trace_whole_and_equal_eager(family):
    """torch.compile(model, fullgraph=True) of each ready model: one graph with our attention and
    fused-embedding ops in it (no graph break), the same logits and parameter gradients as eager."""
    from kernels import models

    config = models.ModelConfig(vocab_size=40, d_model=32, n_heads=2, n_encoder_layers=1, n_decoder_layers=1,
                                dim_feedforward=48, dropout=0.0, max_seq_len=32, n_classes=3)
    model = getattr(models, family)(config).to(DEVICE)
    ids = torch.randint(3, 40, (2, 7), device=DEVICE)
    padding = torch.ones(2, 7, dtype=torch.bool, device=DEVICE)
    padding[0, 5:] = False
    second = ids[:, :4] if family == "EncoderDecoderModel" else padding

    def loss_and_grads(fn):
        model.zero_grad()
        logits = fn(ids, second)
        logits.square().mean().backward()
        return logits.detach(), [p.grad.clone() for p in model.parameters() if p.grad is not None]

    eager_logits, eager_grads = loss_and_grads(model)
    recorder = GraphOps("aot_eager")
    compiled_logits, compiled_grads = loss_and_grads(torch.compile(model, fullgraph=True, backend=recorder))
    assert recorder.ran("attention_forward") and recorder.ran("sinusoidal_embedding"), recorder.targets
    torch.testing.assert_close(compiled_logits, eager_logits, rtol=0, atol=0)
    assert len(compiled_grads) == len(eager_grads)
    for compiled_grad, eager_grad in zip(compiled_grads, eager_grads, strict=True):
        torch.testing.assert_close(compiled_grad, eager_grad, rtol=1e-6, atol=1e-7)
