"""The positional-encoding kernel (@triton.jit) and its launcher: the only positional module that imports triton."""
