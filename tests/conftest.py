"""Shared test helpers: fixture-file locations, free loopback ports, process checks."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ML-Agents release 21 reference files, kept in the repository (see its NOTICE and README.md).
FIXTURES = REPO / "tests" / "fixtures" / "mlagents-r21"


@pytest.fixture
def fixtures_dir() -> Path:
    if not FIXTURES.is_dir():
        pytest.fail(f"ML-Agents reference fixtures not found at {FIXTURES}")
    return FIXTURES


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def port() -> int:
    return free_port()


def process_gone(pid: int) -> bool:
    """True once ``pid`` has exited (a zombie counts as exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().split()[2] == "Z"


def live_children() -> set[int]:
    """Process ids of this process's children that are still running."""
    pids: set[int] = set()
    for task in Path("/proc/self/task").iterdir():
        children = task / "children"
        if children.exists():
            pids.update(int(p) for p in children.read_text().split())
    return {p for p in pids if not process_gone(p)}
