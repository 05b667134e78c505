"""Dropout as every fused kernel takes it: a probability and the Philox seed of the keep mask.

The kernels never store a mask: it is a pure function of (seed, element), so a backward or a replay
(`kernels.attention_dropout_mask`) regenerates it bit for bit. How each family turns an element into
Philox counters, and a draw into "keep", is in kernels/shared/triton/philox.py.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Dropout:
    """One call's dropout. `Dropout()` (p = 0) means no dropout: launchers take a Dropout, never None."""

    p: float = 0.0
    seed: int = 0

    @property
    def active(self) -> bool:
        return self.p > 0.0

    @property
    def keep_scale(self) -> float:
        """The factor on kept elements, 1 / (1 - p), so that the expectation is unchanged; 0 at p = 1,
        where no element is kept (torch's dropout returns zeros there too)."""
        return 0.0 if self.p >= 1.0 else 1.0 / (1.0 - self.p)


NO_DROPOUT = Dropout()  # one shared instance (frozen) for the calls without dropout
