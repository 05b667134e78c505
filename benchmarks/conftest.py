"""pytest-benchmark settings for `pytest benchmarks/` (each suite's test_*_benchmark.py): say which card and
software produced the numbers."""

import torch
import triton

from benchmarks.harness.environment import card_name, resolve_device


def pytest_report_header(config) -> str:
    device = resolve_device(None)
    return f"benchmarks on {card_name(device)}: torch {torch.__version__}, triton {triton.__version__}"


def pytest_benchmark_update_machine_info(config, machine_info: dict) -> None:
    """Stored in --benchmark-json and --benchmark-save files, so that compared runs show their card."""
    machine_info["card"] = card_name(resolve_device(None))
    machine_info["torch"] = torch.__version__
    machine_info["cuda"] = torch.version.cuda
    machine_info["triton"] = triton.__version__
