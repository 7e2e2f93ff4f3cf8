"""Kill loop: `unity-sb3 learn` stopped at random moments and resumed, over and over.

    python bench/kill_resume.py [--kills 10 5 5] [--polite 2] [--seed 0] [--max-delay 25]

Three runs, each with every kind of saved state: ``ppo`` (built-in 3DBall: observation
normaliser, curiosity reward model and optimizer, a gravity curriculum whose lesson changes
early), ``sac`` (built-in Basic, SAC with ``save_replay_buffer``) and ``self_play`` (built-in
Tennis: the league and its ELO). Each run is started, stopped after a random 0.5 to
``--max-delay`` s (so during start-up, mid-rollout, mid-update or mid-checkpoint write), and
resumed with
``--resume``, ``--kills`` times with SIGKILL (the trainer's process group, as ``kill -9``
would), then ``--polite`` times each with SIGINT (Ctrl+C) and SIGTERM. After every stop it
checks:

- nothing is left: every player the trainer started exits, and no port it listened on stays
  open;
- the last complete checkpoint is whole: ``checkpoint.json`` names files that all exist and
  load (model zip with its optimizer, normaliser, replay buffer, reward models, league), and
  every file ``training_status.json`` lists exists;
- nothing is lost: the checkpoint step never goes back, a polite stop saves at the step it
  stopped (final checkpoint = pointer), and the next resume says it continues from exactly
  that step, in the saved lesson;

and at the end resumes each run to completion. Prints one line per stop and a summary.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from player_processes import alive, listening_ports, player_ports

REPO = Path(__file__).resolve().parents[1]
SMALL = {"hidden_units": 32, "num_layers": 1}
LONG = 10_000_000  # max_steps while being killed: the run never ends by itself


def _ppo() -> dict[str, Any]:
    return {
        "behaviors": {
            "3DBall": {
                "trainer_type": "ppo",
                "hyperparameters": {"batch_size": 120, "buffer_size": 480, "num_epoch": 2},
                "network_settings": {**SMALL, "normalize": True},
                "reward_signals": {
                    "extrinsic": {"gamma": 0.99, "strength": 1.0},
                    "curiosity": {"gamma": 0.99, "strength": 0.02, "encoding_size": 16},
                },
                "max_steps": LONG,
                "checkpoint_interval": 1500,
                "keep_checkpoints": 3,
                "summary_freq": 3000,
                "time_horizon": 64,
            }
        },
        "environment_parameters": {
            "gravity": {
                "curriculum": [
                    {
                        "name": "Moon",
                        "completion_criteria": {
                            "behavior": "3DBall",
                            "measure": "progress",
                            "threshold": 0.0003,  # past step 3000
                        },
                        "value": 1.6,
                    },
                    {"name": "Earth", "value": 9.81},
                ]
            }
        },
        "env_settings": {"env_path": "builtin:3DBall", "seed": 1},
    }


def _sac() -> dict[str, Any]:
    return {
        "behaviors": {
            "Basic": {
                "trainer_type": "sac",
                "hyperparameters": {
                    "batch_size": 64,
                    "buffer_size": 20000,
                    "buffer_init_steps": 200,
                    "save_replay_buffer": True,
                },
                "network_settings": SMALL,
                "max_steps": LONG,
                "checkpoint_interval": 600,
                "keep_checkpoints": 3,
                "summary_freq": 1200,
                "time_horizon": 10,
            }
        },
        "env_settings": {"env_path": "builtin:Basic", "seed": 2},
    }


def _self_play() -> dict[str, Any]:
    return {
        "behaviors": {
            "Tennis": {
                "trainer_type": "ppo",
                "hyperparameters": {"batch_size": 128, "buffer_size": 512, "num_epoch": 2},
                "network_settings": {**SMALL, "normalize": True},
                "self_play": {"save_steps": 500, "team_change": 1000, "swap_steps": 250},
                "max_steps": LONG,
                "checkpoint_interval": 1000,
                "keep_checkpoints": 3,
                "summary_freq": 2000,
                "time_horizon": 64,
            }
        },
        "env_settings": {"env_path": "builtin:Tennis", "num_areas": 2, "seed": 3},
    }


SCENARIOS = {"ppo": _ppo, "sac": _sac, "self_play": _self_play}


# -- the saved state -----------------------------------------------------------------------------


@dataclass
class Saved:
    """What a stopped run left: per behavior the checkpoint step (None: none yet)."""

    steps: dict[str, int | None] = field(default_factory=dict)
    final: dict[str, int | None] = field(default_factory=dict)
    lessons: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


def inspect_run(root: Path, behaviors: list[str]) -> Saved:
    """Check every file the run's pointers and status name; load each."""
    saved = Saved()
    status_file = root / "run_logs/training_status.json"
    status: dict[str, Any] = {}
    if status_file.exists():
        try:
            status = json.loads(status_file.read_text())
        except json.JSONDecodeError as err:
            saved.problems.append(f"training_status.json unreadable: {err}")
    for name, entry in status.items():
        if isinstance(entry, dict) and "lesson_num" in entry:
            saved.lessons[name] = int(entry["lesson_num"])
        for record in entry.get("checkpoints", []) if isinstance(entry, dict) else []:
            for path in (record["file_path"], *record["auxillary_file_paths"]):
                if not (root.parent.parent / path).exists():
                    saved.problems.append(f"training_status.json lists missing {path}")
    for behavior in behaviors:
        folder = root / behavior
        pointer_file = folder / "checkpoint.json"
        final = status.get(behavior, {}).get("final_checkpoint")
        saved.final[behavior] = None if final is None else int(final["steps"])
        if not pointer_file.exists():
            saved.steps[behavior] = None
            continue
        pointer = json.loads(pointer_file.read_text())
        saved.steps[behavior] = int(pointer["steps"])
        for key, name in pointer.items():
            if key == "steps":
                continue
            try:
                _load(folder / name, key)
            except Exception as err:  # report, do not stop the loop
                saved.problems.append(f"{behavior}: {key} {name}: {type(err).__name__}: {err}")
    return saved


def _load(path: Path, key: str) -> None:
    if key == "model":
        with zipfile.ZipFile(path) as archive:
            assert archive.testzip() is None, "corrupt member"
            names = set(archive.namelist())
            optimizers = sorted(n for n in names if n.endswith("optimizer.pth"))
            assert {"data", "policy.pth"} <= names and optimizers, names
            for name in optimizers:  # PPO's policy.optimizer; SAC's actor, critic, ent_coef
                with archive.open(name) as handle:
                    optimizer = torch.load(handle, weights_only=False)
                assert optimizer["state"], f"{name}: optimizer state is empty"
    elif key == "normalizer":
        with np.load(path) as data:
            assert data.files, "no statistics"
    elif key == "replay_buffer":
        with path.open("rb") as handle:
            buffer = pickle.load(handle)
        assert buffer.size() > 0, "empty replay buffer"
    elif key in ("reward_signals", "self_play"):
        state = torch.load(path, weights_only=True)
        assert state, f"empty {key}"
    elif key == "onnx":
        assert path.stat().st_size > 0
    else:
        assert path.exists()


# -- one stop ------------------------------------------------------------------------------------


@dataclass
class Stop:
    scenario: str
    how: str
    after_s: float
    resumed_from: dict[str, int | None]
    problems: list[str]
    leaked_players: int
    leaked_ports: int


def run_once(
    config: Path, results: Path, resume: bool, how: str, delay: float, log: Path
) -> tuple[int | None, dict[int, int], str]:
    """Start learn; stop it ``how`` after ``delay`` s (``how`` None: let it finish)."""
    command = [sys.executable, "-m", "cli.main", "learn", str(config), "--run-id=run"]
    command += [f"--results-dir={results}"] + (["--resume"] if resume else [])
    with log.open("w") as out:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        players: dict[int, int] = {}
        deadline = time.monotonic() + delay
        while how != "finish" and time.monotonic() < deadline and process.poll() is None:
            players.update(player_ports(process.pid))
            time.sleep(0.05)
        players.update(player_ports(process.pid))
        if process.poll() is not None and how != "finish":
            return process.returncode, players, log.read_text()  # ended by itself: a problem
        if how == "SIGKILL":
            os.killpg(process.pid, signal.SIGKILL)
        elif how == "SIGINT":
            os.killpg(process.pid, signal.SIGINT)  # a terminal's Ctrl+C: the whole group
        elif how == "SIGTERM":
            process.send_signal(signal.SIGTERM)
        try:
            code = process.wait(timeout=600 if how == "finish" else 120)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            code = None  # a hang
    return code, players, log.read_text()


RESUMED = re.compile(r"Resuming (\S+) from step (\d+)\.")
FRESH = re.compile(r"--resume: (\S+) has no checkpoint in .* yet")
LESSON = re.compile(r"Parameter '(\S+)' starts in lesson (\d+) of")


def check_resume(output: str, before: Saved) -> list[str]:
    """The resumed run continued from exactly the saved steps and lessons (when it got as far
    as saying so before it was stopped again)."""
    problems = []
    for behavior, step in RESUMED.findall(output):
        if before.steps.get(behavior) != int(step):
            problems.append(
                f"{behavior} resumed from step {step}, saved {before.steps.get(behavior)}"
            )
    for behavior in FRESH.findall(output):
        if before.steps.get(behavior) is not None:
            problems.append(f"{behavior} started afresh although step {before.steps[behavior]}")
    for parameter, number in LESSON.findall(output):
        if before.lessons.get(parameter, 0) != int(number):
            problems.append(
                f"lesson of {parameter}: resumed in {number}, saved {before.lessons.get(parameter)}"
            )
    return problems


def loop(
    scenario: str, kills: int, polite: int, rng: random.Random, work: Path, max_delay: float
) -> list[Stop]:
    config_data = SCENARIOS[scenario]()
    behaviors = list(config_data["behaviors"])
    config = work / f"{scenario}.yaml"
    config.write_text(yaml.safe_dump(config_data))
    results = work / f"results-{scenario}"
    stops: list[Stop] = []
    plan = ["SIGKILL"] * kills + ["SIGINT", "SIGTERM"] * polite
    saved = Saved(steps=dict.fromkeys(behaviors))
    started = False
    for index, how in enumerate([*plan, "finish"]):
        if how == "finish":  # resume to completion, a little further than saved
            last = max((s for s in saved.steps.values() if s is not None), default=0)
            for settings in config_data["behaviors"].values():
                settings["max_steps"] = last + 2000
            config.write_text(yaml.safe_dump(config_data))
        delay = rng.uniform(0.5, max_delay)
        before_ports = listening_ports()
        code, players, output = run_once(
            config, results, started, how, delay, work / f"{scenario}-{index}.log"
        )
        started = started or (results / "run").exists()
        problems = check_resume(output, saved) if index else []
        if how == "finish" and code != 0:
            problems.append(f"the final resume failed (exit {code}): {output[-800:]}")
        if how in ("SIGINT", "SIGTERM") and code not in (0, 130):
            problems.append(f"{how}: exit {code}")
        if code is None:
            problems.append("hang: did not exit within 120 s of the signal")
        elif how != "finish" and code >= 0 and f"{how}" not in ("SIGINT", "SIGTERM"):
            problems.append(f"ended by itself (exit {code}) before the {how}: {output[-600:]}")
        time.sleep(0.5)
        deadline = time.monotonic() + 15
        while any(alive(pid) for pid in players) and time.monotonic() < deadline:
            time.sleep(0.1)
        leaked = [pid for pid in players if alive(pid)]
        for pid in leaked:
            os.kill(pid, signal.SIGKILL)
        if leaked:
            problems.append(f"players still running 15 s after the stop: {leaked}")
        open_ports = (listening_ports() - before_ports) & set(players.values())
        now = inspect_run(results / "run", behaviors) if started else Saved()
        problems += now.problems
        for behavior in behaviors:
            old, new = saved.steps.get(behavior), now.steps.get(behavior)
            if old is not None and (new is None or new < old):
                problems.append(f"{behavior}: checkpoint went back from {old} to {new}")
            polite = how in ("SIGINT", "SIGTERM", "finish") and code == 0
            if polite and new is not None and now.final.get(behavior) != new:
                problems.append(
                    f"{behavior}: stopped politely at {new} but final checkpoint is "
                    f"{now.final.get(behavior)}"
                )
        stop = Stop(
            scenario,
            how,
            round(delay if how != "finish" else 0.0, 1),
            dict(now.steps),
            problems,
            len(leaked),
            len(open_ports),
        )
        stops.append(stop)
        print(
            f"{scenario:9s} {index:2d} {how:7s} after {stop.after_s:5.1f}s exit {code!s:4s} "
            f"checkpoint {stop.resumed_from} lessons {now.lessons or '-'} "
            f"leaked players {stop.leaked_players} ports {stop.leaked_ports} "
            f"{'OK' if not problems else 'PROBLEMS: ' + '; '.join(problems)}",
            flush=True,
        )
        if started:
            saved = now
    return stops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills",
        type=int,
        nargs=3,
        default=[10, 5, 5],
        metavar="N",
        help="SIGKILLs for ppo, sac and self_play (default 10 5 5)",
    )
    parser.add_argument(
        "--polite", type=int, default=2, help="SIGINT + SIGTERM pairs per scenario (default 2)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--max-delay",
        type=float,
        default=25.0,
        help="stop each run after a random 0.5 to this many seconds (default 25)",
    )
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=SCENARIOS)
    args = parser.parse_args()
    # Started in the background by a shell, this process (and so every trainer it starts)
    # would ignore SIGINT; the trainers must see Ctrl+C as in a terminal.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rng = random.Random(args.seed)
    kills = dict(zip(SCENARIOS, args.kills, strict=True))
    stops: list[Stop] = []
    with tempfile.TemporaryDirectory(prefix="unity-sb3-kill-") as folder:
        for scenario in args.scenarios:
            stops += loop(scenario, kills[scenario], args.polite, rng, Path(folder), args.max_delay)
    print()
    for how in ("SIGKILL", "SIGINT", "SIGTERM", "finish"):
        group = [s for s in stops if s.how == how]
        if group:
            good = sum(not s.problems for s in group)
            print(f"{how:8s}: {good}/{len(group)} stops resumed cleanly")
    print(
        f"players leaked: {sum(s.leaked_players for s in stops)}, "
        f"ports left open: {sum(s.leaked_ports for s in stops)}, "
        f"stops with problems: {sum(bool(s.problems) for s in stops)} of {len(stops)}"
    )


if __name__ == "__main__":
    main()
