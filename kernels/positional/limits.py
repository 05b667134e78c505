"""Limits of the positional-encoding kernel that callers check before launching it (no triton here)."""

MAX_POSITION = 1 << 24  # float32 represents every integer below this: positions past it would collide
