"""What a run measured on: device choice, dtype names and the metadata written with every result."""

import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import torch
import triton

DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
_REPO_ROOT = Path(__file__).resolve().parents[2]


def resolve_device(name: str | None) -> torch.device:
    """The named device ("cuda" or "cpu"), or CUDA when present and the CPU otherwise."""
    if name is None:
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name not in ("cuda", "cpu"):
        raise ValueError(f"unknown device {name!r}: the benchmarks run on cuda or cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("cuda was asked for, but torch sees no CUDA device")
    return torch.device(name, torch.cuda.current_device()) if name == "cuda" else torch.device(name)


def default_dtype(device: torch.device) -> torch.dtype:
    """bf16 on CUDA, fp32 on the CPU (where a few cores compute in it natively)."""
    return torch.bfloat16 if device.type == "cuda" else torch.float32


def dtype_name(dtype: torch.dtype) -> str:
    return next(name for name, candidate in DTYPES.items() if candidate == dtype)


def card_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {_cpu_model()} ({torch.get_num_threads()} threads)"


def _cpu_model() -> str:
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    """BENCH_GIT_COMMIT when set (a copy of the tree without .git, as on a lent GPU machine), else HEAD
    of the checkout the benchmarks run from; None when neither is known."""
    if os.environ.get("BENCH_GIT_COMMIT"):
        return os.environ["BENCH_GIT_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=_REPO_ROOT, capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def run_metadata(device: torch.device) -> dict:
    return {
        "card": card_name(device),
        "device": device.type,
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "triton": triton.__version__,
        "git_commit": git_commit(),
    }
