"""Switches that a `with` block sets for the calls inside it (the forward's descriptor path, warp
specialisation): a context variable, so that threads and asyncio tasks each see their own."""
import contextlib
import contextvars
from collections.abc import Iterator


@contextlib.contextmanager
def switched(variable: contextvars.ContextVar, enabled: bool) -> Iterator[None]:
    """`variable` set to `enabled` inside the block, restored after it."""
    if not isinstance(enabled, bool):
        raise TypeError(f"enabled must be a bool, got {enabled!r}")
    token = variable.set(enabled)
    try:
        yield
    finally:
        variable.reset(token)
