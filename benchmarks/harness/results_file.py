"""Writing a run's results as JSON."""

import json
from pathlib import Path


def write_results(out_dir: Path, name: str, payload: dict) -> Path:
    """`out_dir/name.json`, creating the folder. NaN errors stay NaN (a broken kernel must show)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
