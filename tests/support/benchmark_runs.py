"""Running `python -m benchmarks ...` inside a test, through its own entry point: the exit code, what it
printed, and the JSON a quick CPU run wrote."""
import contextlib
import io
import json
from pathlib import Path

from benchmarks.__main__ import main


def run_benchmarks(argv: list[str]) -> tuple[int, str]:
    """(exit code, screen) of `python -m benchmarks ARGV`."""
    screen = io.StringIO()
    with contextlib.redirect_stdout(screen):
        code = main(argv)
    return code, screen.getvalue()


def run_quick_on_cpu(command: str, out: Path) -> tuple[int, dict, str]:
    """(exit code, the JSON it wrote, screen) of `python -m benchmarks COMMAND --quick --device cpu --out OUT`."""
    code, screen = run_benchmarks([command, "--quick", "--device", "cpu", "--out", str(out)])
    return code, json.loads((out / f"{command}.json").read_text()), screen
