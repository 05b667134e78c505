"""Test setup: CUDA when present, else the real Triton kernels in Triton's interpreter on the CPU.

TRITON_INTERPRET must be set before triton is first imported, which is why it happens here, at
collection time, before any test module imports `kernels`.
"""
import os
import zlib

import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from support.devices import DEVICE  # noqa: E402


@pytest.fixture
def device() -> str:
    return DEVICE


RUN_SEED_VARIABLE = "KERNELS_TEST_SEED"
RUN_SEED = int(os.environ.get(RUN_SEED_VARIABLE) or int.from_bytes(os.urandom(4), "little"))
# pytest-xdist's workers (`-n 2`, as CI runs the suite) inherit this process's environment: they draw
# the same inputs as the run seed printed here, and child processes of tests do too.
os.environ[RUN_SEED_VARIABLE] = str(RUN_SEED)


def pytest_sessionstart(session) -> None:
    """The run seed, first thing in the output (also under -q, which hides pytest's header)."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(f"random inputs from run seed {RUN_SEED} (replay with {RUN_SEED_VARIABLE}={RUN_SEED})")


def seed_for_test(run_seed: int, test_id: str) -> int:
    """Each test's torch seed: fixed by the run seed and the test's id, so one failing test replays
    alone, in any order, from the run seed its header printed."""
    return zlib.crc32(f"{run_seed}:{test_id}".encode())


@pytest.fixture(autouse=True)
def fresh_seed(request):
    """Fresh random inputs every run; a failing test's captured output names its seeds."""
    seed = seed_for_test(RUN_SEED, request.node.nodeid)
    print(f"torch seed {seed} (run seed {RUN_SEED}: replay with {RUN_SEED_VARIABLE}={RUN_SEED})")
    torch.manual_seed(seed)
