"""The causal and sliding-window masks as tensors, for the calls where the kernels' own `is_causal`
does not apply: bottom-right alignment (a KV-cache step), causality combined with another mask,
torch-convention modules, the `window` variant on the torch backend. `kernels.attention(...,
is_causal=True)` never builds one: it skips the tiles instead."""
import torch


def causal_keep_mask(n_queries: int, n_keys: int, device, *, past_keys: int = 0) -> torch.Tensor:
    """(Nq, Nk) bool, True = attend: query i sees keys 0 .. past_keys + i.

    `past_keys=0` is torch SDPA's top-left alignment, what `is_causal=True` means; `past_keys=Nk - Nq`
    aligns bottom-right: the queries are the last Nq of the Nk positions, as in a cached decoding step.
    """
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(past_keys)


def window_keep_mask(n_queries: int, n_keys: int, device, *, left: int | None, right: int | None) -> torch.Tensor:
    """(Nq, Nk) bool, True = attend: query i sees keys i - left .. i + right (top-left positions, as
    `is_causal`; None leaves a side unbounded). `is_causal` is the window (None, 0)."""
    ahead = torch.arange(n_keys, device=device)[None, :] - torch.arange(n_queries, device=device)[:, None]  # j - i
    if left is None:
        return ahead <= right
    return ahead >= -left if right is None else (ahead >= -left) & (ahead <= right)
