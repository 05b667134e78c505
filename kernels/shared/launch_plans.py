"""What a launcher derives from a call's shapes, strides, dtypes, device and flags (its constexprs, size
arguments and grid), kept for the next call with the same ones: host time per launch
(`python -m benchmarks overhead`). Many calls repeat one layout: every layer of a model, every decode
step over a fixed-size cache.

A plan's key must hold everything the plan is computed from, switches included (the launchers say
what, and tests/sdpa/test_launch_plans.py proves a changed one is never served a stale plan); tensors
themselves are never kept, only numbers and flags.
"""
from collections.abc import Hashable


class LaunchPlans:
    """A bounded map from a launch's key to its plan: at most `size` plans, the oldest forgotten first."""

    def __init__(self, size: int = 128):
        self._plans: dict = {}
        self.size = size

    def get(self, key: Hashable):
        return self._plans.get(key)

    def add(self, key: Hashable, plan):
        """Remember `plan` under `key` and return it."""
        plans = self._plans
        if len(plans) >= self.size:
            plans.pop(next(iter(plans), None), None)
        plans[key] = plan
        return plan

    def clear(self) -> None:
        self._plans.clear()

    def __len__(self) -> int:
        return len(self._plans)
