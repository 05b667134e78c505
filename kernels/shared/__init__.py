"""What the op families share: backend choice (`backends`), whether Triton can run here
(`triton_availability`), the custom-op namespace and dropout seeds (`custom_ops`), the `Dropout` the
launchers take (`dropout`), and the jit helpers both families' kernels call (`triton/`)."""
