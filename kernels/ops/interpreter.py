"""Whether the Triton kernels run in Triton's interpreter (TRITON_INTERPRET=1, on the CPU).

triton reads the variable when a kernel is decorated, so it is read once, at import, here too.
"""
import os

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
