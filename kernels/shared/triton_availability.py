"""Whether Triton can be imported here, and whether its kernels run in Triton's interpreter.

Triton ships Linux wheels only: elsewhere (and wherever it is missing) `import kernels` still works,
every op runs on its "torch" backend, and asking for backend="triton" is an error that says why. Only
the `triton/` folders of each family hold or launch kernels; the rest of the package imports them
only when this says they can be.

INTERPRETING: the kernels run in Triton's interpreter (TRITON_INTERPRET=1, on the CPU). triton reads
the variable when a kernel is decorated, so it is read once, at import, here too.
"""
import os

try:
    import triton  # noqa: F401
except ImportError as error:
    TRITON_IMPORT_ERROR: str | None = f"{type(error).__name__}: {error}"
else:
    TRITON_IMPORT_ERROR = None

TRITON_AVAILABLE = TRITON_IMPORT_ERROR is None

INTERPRETING = os.environ.get("TRITON_INTERPRET", "0") == "1"
