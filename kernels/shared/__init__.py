"""What the op families share: backend choice (`backends`), whether Triton can run here
(`triton_availability`), and the custom-op namespace and dropout seeds (`custom_ops`)."""
