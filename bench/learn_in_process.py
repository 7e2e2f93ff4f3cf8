"""What the learning benches share: ``unity-sb3 learn`` in this process on a config mapping."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from cli.main import main


def learn_in_process(config: dict[str, Any], folder: Path, label: str) -> float:
    """Write ``config`` to ``folder/<label>.yaml``, train it as run ``label`` in ``folder``
    and return the seconds it took; exits with the command's code if it fails."""
    path = folder / f"{label}.yaml"
    path.write_text(yaml.safe_dump(config))
    started = time.perf_counter()
    code = main(["learn", str(path), f"--run-id={label}", f"--results-dir={folder}", "--force"])
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"unity-sb3 learn {path} failed with exit code {code}")
    return elapsed
