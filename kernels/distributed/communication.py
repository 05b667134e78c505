"""The transport of context parallelism, all torch.distributed: ring exchanges (isend to the next
rank, irecv from the previous one, posted together so they overlap whatever runs before `wait`),
all-gathers, reduce-scatters and all-to-alls. Bool tensors travel as uint8 (not every backend sends
bool). `count_sent_bytes` measures the bytes this rank sends, for the benchmark's check against the
formulas: a collective counts what leaves the rank in the bandwidth-optimal algorithm ((W-1) copies
of its tensor for an all-gather, every part but its own for a reduce-scatter or all-to-all)."""
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist

from kernels.distributed.groups import GroupInfo


@dataclass
class SentBytes:
    total: int = 0


_counters: list[SentBytes] = []


@contextlib.contextmanager
def count_sent_bytes() -> Iterator[SentBytes]:
    """Count the bytes this rank sends inside the block (`.total` once the block has run)."""
    counter = SentBytes()
    _counters.append(counter)
    try:
        yield counter
    finally:
        _counters.remove(counter)


def _sent(tensors: list[torch.Tensor]) -> None:
    for counter in _counters:
        counter.total += sum(t.numel() * t.element_size() for t in tensors)


class RingExchange:
    """Send `tensors` to the next rank and receive same-shaped ones from the previous rank, in flight
    until `wait()`, which returns the received tensors."""

    def __init__(self, tensors: list[torch.Tensor], info: GroupInfo):
        self._sent = [_wire(t) for t in tensors]  # kept alive until the sends complete
        self._received = [torch.empty_like(t) for t in self._sent]
        self._dtypes = [t.dtype for t in tensors]
        ops = [dist.P2POp(dist.isend, t, info.next_peer, info.group) for t in self._sent]
        ops += [dist.P2POp(dist.irecv, t, info.previous_peer, info.group) for t in self._received]
        self._works = dist.batch_isend_irecv(ops)
        _sent(self._sent)

    def wait(self) -> list[torch.Tensor]:
        for work in self._works:
            work.wait()
        return [t.to(dtype) for t, dtype in zip(self._received, self._dtypes)]


def _wire(t: torch.Tensor) -> torch.Tensor:
    return (t.to(torch.uint8) if t.dtype == torch.bool else t).contiguous()


def all_gather(t: torch.Tensor, info: GroupInfo) -> list[torch.Tensor]:
    """Every rank's `t`, in rank order (ranks pass equal shapes)."""
    sent = _wire(t)
    parts = [torch.empty_like(sent) for _ in range(info.world_size)]
    dist.all_gather(parts, sent, group=info.group)
    _sent([sent] * (info.world_size - 1))
    return [p.to(t.dtype) for p in parts]


def reduce_scatter(parts: list[torch.Tensor], info: GroupInfo) -> torch.Tensor:
    """The sum over ranks of their `parts[this rank]` (`parts` has one same-shaped tensor per rank)."""
    out = torch.empty_like(parts[0])
    dist.reduce_scatter(out, [p.contiguous() for p in parts], group=info.group)
    _sent(parts[:info.rank] + parts[info.rank + 1:])
    return out


def all_to_all(parts: list[torch.Tensor], info: GroupInfo) -> list[torch.Tensor]:
    """parts[j] goes to rank j; returns what every rank sent to this one, in rank order."""
    sent = [p.contiguous() for p in parts]
    received = [torch.empty_like(p) for p in sent]
    dist.all_to_all(received, sent, group=info.group)
    _sent(sent[:info.rank] + sent[info.rank + 1:])
    return received
