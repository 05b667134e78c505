"""The causal mask as a tensor, for the calls where the kernels' own `is_causal` does not apply:
bottom-right alignment (a KV-cache step), causality combined with another mask, torch-convention
modules. `kernels.attention(..., is_causal=True)` never builds one: it skips the tiles instead."""
import torch


def causal_keep_mask(n_queries: int, n_keys: int, device, *, past_keys: int = 0) -> torch.Tensor:
    """(Nq, Nk) bool, True = attend: query i sees keys 0 .. past_keys + i.

    `past_keys=0` is torch SDPA's top-left alignment, what `is_causal=True` means; `past_keys=Nk - Nq`
    aligns bottom-right: the queries are the last Nq of the Nk positions, as in a cached decoding step.
    """
    return torch.ones(n_queries, n_keys, dtype=torch.bool, device=device).tril(past_keys)
