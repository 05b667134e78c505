"""Peak device memory of one call."""

from collections.abc import Callable

import torch


def peak_memory_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes a call allocates at its peak above what was allocated before it (its output included).

    None off CUDA: the CPU allocator keeps no peak statistics.
    """
    if device.type != "cuda":
        return None
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    fn()
    torch.cuda.synchronize(device)
    return torch.cuda.max_memory_allocated(device) - before
