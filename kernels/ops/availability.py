"""Whether Triton can be imported here. It ships Linux wheels only: elsewhere (and wherever it is
missing) `import kernels` still works, every op runs on its "torch" backend, and asking for
backend="triton" is an error that says why. Only the modules that hold or launch kernels import
triton; the rest of the package imports them only when this says they can be."""

try:
    import triton  # noqa: F401
except ImportError as error:
    TRITON_IMPORT_ERROR: str | None = f"{type(error).__name__}: {error}"
else:
    TRITON_IMPORT_ERROR = None

TRITON_AVAILABLE = TRITON_IMPORT_ERROR is None
