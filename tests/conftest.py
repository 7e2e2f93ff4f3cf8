"""Shared test helpers: fixture-file locations, free loopback ports, process checks."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# ML-Agents release 21 reference files, kept in the repository (see its NOTICE and README.md).
FIXTURES = REPO / "tests" / "fixtures" / "mlagents-r21"
# The reference training configurations, current format and the two legacy trainer configs,
# named one by one: a missing file fails the tests that read it.
CURRENT_CONFIG_NAMES = (
    "imitation/Hallway.yaml",
    "imitation/PushBlock.yaml",
    "imitation/Pyramids.yaml",
    "ppo/3DBall.yaml",
    "ppo/3DBallHard.yaml",
    "ppo/3DBall_randomize.yaml",
    "ppo/Basic.yaml",
    "ppo/Crawler.yaml",
    "ppo/GridWorld.yaml",
    "ppo/Hallway.yaml",
    "ppo/PushBlock.yaml",
    "ppo/Pyramids.yaml",
    "ppo/PyramidsRND.yaml",
    "ppo/Visual3DBall.yaml",
    "ppo/VisualFoodCollector.yaml",
    "ppo/Walker.yaml",
    "ppo/WallJump.yaml",
    "ppo/WallJump_curriculum.yaml",
    "sac/3DBall.yaml",
    "sac/Basic.yaml",
)
LEGACY_TRAINER_CONFIG_NAMES = ("legacy/3DBall_randomize_v017.yaml", "legacy/trainer_config.yaml")


@pytest.fixture(autouse=True, scope="session")
def sb3_log_dir(tmp_path_factory: pytest.TempPathFactory) -> None:
    """SB3's default logger makes a ``SB3-<time>`` folder at every ``learn``; under the system
    temp folder they would pile up, so tests put them in pytest's own temp folder."""
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3-logs"))


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


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """Tiny networks train fastest on one thread (two crawl on a shared 2-core machine)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


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
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except (FileNotFoundError, ProcessLookupError):
            continue  # the thread ended while we listed them
    return {p for p in pids if not process_gone(p)}
