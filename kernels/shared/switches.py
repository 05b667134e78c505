"""Switches that a `with` block sets for the calls inside it (the forward's descriptor path, warp
specialisation, the GPU the pruners choose tiles for): a context variable, so that threads and asyncio
tasks each see their own."""
import contextlib
import contextvars
from collections.abc import Iterator


@contextlib.contextmanager
def switched(variable: contextvars.ContextVar, value, kind: type = bool, name: str = "enabled") -> Iterator[None]:
    """`variable` set to `value` (a `kind`, else TypeError naming the argument `name`) inside the block,
    restored after it."""
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise TypeError(f"{name} must be a {kind.__name__}, got {value!r}")
    token = variable.set(value)
    try:
        yield
    finally:
        variable.reset(token)
