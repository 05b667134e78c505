"""The process group a context-parallel call runs on: its size, this process's place in it, and the
global ranks of its ring neighbours (torch.distributed's point-to-point ops address global ranks)."""
from dataclasses import dataclass

import torch.distributed as dist


@dataclass(frozen=True)
class GroupInfo:
    group: "dist.ProcessGroup | None"
    rank: int  # this process's rank inside `group`
    world_size: int

    def global_rank(self, group_rank: int) -> int:
        """The global rank of `group_rank` (taken modulo the group size, so ring arithmetic wraps)."""
        group_rank %= self.world_size
        return group_rank if self.group is None else dist.get_global_rank(self.group, group_rank)

    @property
    def next_peer(self) -> int:
        return self.global_rank(self.rank + 1)

    @property
    def previous_peer(self) -> int:
        return self.global_rank(self.rank - 1)


def group_info(group: "dist.ProcessGroup | None") -> GroupInfo:
    """`group` (None = the default group) described; a clear error when torch.distributed is not set up."""
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "context parallelism runs on torch.distributed: call torch.distributed.init_process_group first "
            "(torchrun sets up the environment it reads)"
        )
    return GroupInfo(group, dist.get_rank(group), dist.get_world_size(group))
