"""``unity-sb3 learn`` survives players that crash or hang, within mlagents-learn's limits."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")

import yaml

from tests.conftest import REPO, process_gone

CONFIG = {
    "behaviors": {
        "Basic": {
            "trainer_type": "ppo",
            "hyperparameters": {"batch_size": 32, "buffer_size": 128, "num_epoch": 2},
            "network_settings": {"hidden_units": 16, "num_layers": 1},
            "max_steps": 6000,
            "summary_freq": 1000,
            "checkpoint_interval": 1000,
            "keep_checkpoints": 10,
            "time_horizon": 3,
        }
    },
    "env_settings": {"env_path": "builtin:Basic", "seed": 7, "num_envs": 2, "timeout_wait": 5},
}


def player_pids(parent: int) -> list[int]:
    """The player processes ``parent`` started (they run in sessions of their own)."""
    pids = []
    for task in Path(f"/proc/{parent}/task").glob("*"):
        for pid in (task / "children").read_text().split():
            cmdline = Path(f"/proc/{pid}/cmdline")
            if cmdline.exists() and b"--mlagents-port" in cmdline.read_bytes():
                pids.append(int(pid))
    return sorted(pids)


def players_logging_to(folder: Path) -> list[int]:
    """Live player processes whose log is in ``folder`` (every player of a run writes there)."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes()
        except OSError:
            continue
        pid = int(cmdline.parent.name)
        if b"--mlagents-port" in text and str(folder).encode() in text and not process_gone(pid):
            found.append(pid)
    return found


def _start(tmp_path: Path, *flags: str) -> subprocess.Popen[str]:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(CONFIG))
    command = [sys.executable, "-m", "cli.main", "learn", str(config), "--run-id=run"]
    return subprocess.Popen(
        [*command, f"--results-dir={tmp_path / 'results'}", *flags],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _wait_for(path: Path, process: subprocess.Popen[str], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[0]
        assert time.monotonic() < deadline, f"no {path.name} within {seconds} s"
        time.sleep(0.05)


def _players_of(process: subprocess.Popen[str], count: int) -> list[int]:
    deadline = time.monotonic() + 60
    while len(pids := player_pids(process.pid)) != count:
        assert process.poll() is None and time.monotonic() < deadline, pids
        time.sleep(0.05)
    return pids


def _finish(process: subprocess.Popen[str], seconds: float) -> str:
    try:
        out, _ = process.communicate(timeout=seconds)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    return out


def test_a_killed_and_a_hung_player_are_restarted_and_training_finishes(
    tmp_path: Path,
) -> None:
    process = _start(tmp_path, "--restarts-rate-limit-n=-1")
    seen: set[int] = set()
    try:
        killed, hung = _players_of(process, 2)
        seen.update((killed, hung))
        _wait_for(tmp_path / "results/run/Basic/Basic-1000.zip", process)
        os.kill(killed, signal.SIGKILL)
        time.sleep(2.0)
        os.kill(hung, signal.SIGSTOP)
        deadline = time.monotonic() + 60
        while hung in player_pids(process.pid) and process.poll() is None:
            assert time.monotonic() < deadline, "the hung player was never replaced"
            seen.update(player_pids(process.pid))
            time.sleep(0.2)
        seen.update(player_pids(process.pid))
    finally:
        out = _finish(process, 240)
    assert process.returncode == 0, out
    restarts = [line for line in out.splitlines() if "failed and is restarted" in line]
    assert len(restarts) == 2, out
    assert any("SIGKILL" in line or "disconnected" in line for line in restarts), restarts
    assert any("timeout_wait=5" in line for line in restarts), restarts
    status = json.loads((tmp_path / "results/run/run_logs/training_status.json").read_text())
    steps = [c["steps"] for c in status["Basic"]["checkpoints"]]
    assert {s // 1000 for s in steps} == {1, 2, 3, 4, 5, 6}  # every checkpoint, none lost
    assert status["Basic"]["final_checkpoint"]["steps"] >= 6000
    assert all(process_gone(pid) for pid in seen)
    assert players_logging_to(tmp_path) == []  # the replacements are gone too


def test_the_restart_limit_ends_the_run_with_a_checkpoint_and_the_count(tmp_path: Path) -> None:
    process = _start(tmp_path, "--max-lifetime-restarts=0")
    try:
        first, second = _players_of(process, 2)
        _wait_for(tmp_path / "results/run/Basic/Basic-1000.zip", process)
        os.kill(first, signal.SIGKILL)
    finally:
        out = _finish(process, 120)
    assert process.returncode == 1, out
    assert "after 0 restarts, the limit max_lifetime_restarts=0" in out
    pointer = json.loads((tmp_path / "results/run/Basic/checkpoint.json").read_text())
    assert pointer["steps"] >= 1000 and (tmp_path / "results/run/Basic" / pointer["model"]).exists()
    status = json.loads((tmp_path / "results/run/run_logs/training_status.json").read_text())
    assert status["Basic"]["final_checkpoint"]["steps"] == pointer["steps"]
    assert process_gone(first) and process_gone(second)
    assert players_logging_to(tmp_path) == []
