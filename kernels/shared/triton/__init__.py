"""Jit helpers shared by the kernel families (imports triton: used only from the families' `triton/` folders)."""
