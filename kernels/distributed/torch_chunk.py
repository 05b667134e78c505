"""One (query chunk, key chunk) pair in plain PyTorch: the fallback where the Triton kernels cannot
run (CPU tensors without TRITON_INTERPRET=1). It materialises the chunk pair's scores, which is fine
for the small chunks a CPU runs. GQA groups query heads as (B, Hkv, G, N, D) against (B, Hkv, 1, N, D)
keys, so K and V are never repeated. Math in fp32 (fp64 for fp64 inputs); same contract as the
Triton launchers: (out, lse) forward, gradients from the final out and lse backward."""
import torch


def _grouped_scores(q, k, keep, diagonal, scale, dtype):
    """Scores (B, Hkv, G, Nq, Nk) with masked entries at -inf, and the grouped query and key."""
    n_kv_heads = k.size(1)
    q5 = q.to(dtype).unflatten(1, (n_kv_heads, q.size(1) // n_kv_heads))  # (B, Hkv, G, Nq, D)
    k5 = k.to(dtype).unsqueeze(2)  # (B, Hkv, 1, Nk, D)
    scores = q5 @ k5.transpose(-1, -2) * scale
    allowed = torch.ones(scores.shape[-2:], dtype=torch.bool, device=q.device)
    if diagonal:
        allowed = allowed.tril()
    if keep is not None:
        allowed = allowed & keep[:, None, None, None, :]
    return scores.masked_fill(~allowed, float("-inf")), q5, k5


def chunk_forward(q, k, v, keep, diagonal, scale, dtype):
    scores, _, _ = _grouped_scores(q, k, keep, diagonal, scale, dtype)
    lse = torch.logsumexp(scores, dim=-1)  # -inf for a row with no key
    probs = torch.exp(scores - torch.where(lse == float("-inf"), 0.0, lse).unsqueeze(-1))
    out = probs @ v.to(dtype).unsqueeze(2)  # (B, Hkv, G, Nq, Dv)
    return out.flatten(1, 2), lse.flatten(1, 2)


def chunk_backward(q, k, v, out, lse, dout, keep, diagonal, scale, dtype):
    scores, q5, k5 = _grouped_scores(q, k, keep, diagonal, scale, dtype)
    n_kv_heads = k.size(1)
    lse5 = lse.to(dtype).unflatten(1, (n_kv_heads, -1))
    probs = torch.exp(scores - torch.where(lse5 == float("-inf"), float("inf"), lse5).unsqueeze(-1))
    dout5 = dout.to(dtype).unflatten(1, (n_kv_heads, -1))
    delta = (dout5 * out.to(dtype).unflatten(1, (n_kv_heads, -1))).sum(-1, keepdim=True)
    dscores = probs * (dout5 @ v.to(dtype).unsqueeze(2).transpose(-1, -2) - delta)
    dq = (dscores @ k5 * scale).flatten(1, 2)
    dk = (dscores.transpose(-1, -2) @ q5).sum(2) * scale
    dv = (probs.transpose(-1, -2) @ dout5).sum(2)
    return dq, dk, dv
