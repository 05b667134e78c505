"""Float32 inputs: the kernels' dot precision follows torch's float32 matmul switch. Each setting runs
in a fresh process: torch refuses to read its legacy flag once both of its APIs were used."""
import subprocess
import sys

import pytest
import torch

from kernels.sdpa.triton.common import precision_flags

SETTINGS = {  # torch's switch as a user sets it -> the kernels' INPUT_PRECISION for float32
    "": "tf32x3",  # torch's default: float32-level error on tensor cores
    "torch.backends.cuda.matmul.allow_tf32 = True": "tf32",
    "torch.backends.cuda.matmul.fp32_precision = 'ieee'": "ieee",
    "torch.set_float32_matmul_precision('highest')": "ieee",
}
PRINT_PRECISION = ("from kernels.sdpa.triton.common import precision_flags\n"
                   "print(precision_flags(torch.float32)['INPUT_PRECISION'])")


def test_each_torch_setting_gives_its_precision():
    processes = [subprocess.Popen([sys.executable, "-c", f"import torch\n{setting}\n{PRINT_PRECISION}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for setting in SETTINGS]
    seen = {}
    for setting, process in zip(SETTINGS, processes):
        out, err = process.communicate(timeout=300)
        seen[setting] = out.strip() or err
    assert seen == SETTINGS


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_other_dtypes_ignore_the_switch(dtype):
    assert precision_flags(dtype)["INPUT_PRECISION"] == "ieee"
