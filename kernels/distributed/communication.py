"""The transport of context parallelism, all torch.distributed: ring exchanges (isend to the next
rank, irecv from the previous one, posted together so they overlap whatever runs before `wait`),
all-gathers and all-to-alls. Bool tensors travel as uint8 (not every backend sends bool)."""
import torch
import torch.distributed as dist

from kernels.distributed.groups import GroupInfo


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
    return [p.to(t.dtype) for p in parts]


def reduce_scatter(parts: list[torch.Tensor], info: GroupInfo) -> torch.Tensor:
    """The sum over ranks of their `parts[this rank]` (`parts` has one same-shaped tensor per rank)."""
    out = torch.empty_like(parts[0])
    dist.reduce_scatter(out, [p.contiguous() for p in parts], group=info.group)
    return out


def all_to_all(parts: list[torch.Tensor], info: GroupInfo) -> list[torch.Tensor]:
    """parts[j] goes to rank j; returns what every rank sent to this one, in rank order."""
    sent = [p.contiguous() for p in parts]
    received = [torch.empty_like(p) for p in sent]
    dist.all_to_all(received, sent, group=info.group)
    return received
