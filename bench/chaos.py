"""Chaos run: `unity-sb3 learn` on built-in 3DBall while its players are killed at random.

    python bench/chaos.py [--kills 10] [--seed 0] [--max-steps 400000]

Trains ``configs/3DBall.yaml`` (two players, 24 agents) with a checkpoint every 20k steps and
every checkpoint kept, and SIGKILLs a randomly chosen player ``--kills`` times at random moments
(5-20 s apart, from the first checkpoint on). The rate limit is lifted
(``--restarts-rate-limit-n=-1``): mlagents-learn's default of one restart per player per minute
would end a run killed this often, by design. Prints the restarts survived, the final mean
reward, the checkpoints lost (expected ones missing from ``training_status.json`` or listed
there without their files) and the player processes left running.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import yaml
from player_processes import alive, player_pids

REPO = Path(__file__).resolve().parents[1]
CHECKPOINT_INTERVAL = 20_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-steps", type=int, default=400_000)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    work = Path(tempfile.mkdtemp(prefix="unity-sb3-chaos-"))
    config = yaml.safe_load((REPO / "configs/3DBall.yaml").read_text())
    behavior = config["behaviors"]["3DBall"]
    behavior.update(
        checkpoint_interval=CHECKPOINT_INTERVAL, keep_checkpoints=1000, max_steps=args.max_steps
    )
    config_path = work / "3DBall_chaos.yaml"
    config_path.write_text(yaml.safe_dump(config))
    command = [
        sys.executable,
        "-m",
        "cli.main",
        "learn",
        str(config_path),
        "--run-id=chaos",
        f"--results-dir={work / 'results'}",
        "--restarts-rate-limit-n=-1",
        f"--seed={args.seed}",
    ]
    print("running:", " ".join(command[2:]), flush=True)
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []

    def read_output() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip())
            if "failed and is restarted" in line or "Mean Reward" in line:
                print(f"  [{time.monotonic() - started:6.1f} s] {line.rstrip()}", flush=True)

    reader = threading.Thread(target=read_output, daemon=True)
    reader.start()
    seen: set[int] = set()
    kills = 0
    first_checkpoint = work / "results/chaos/3DBall/checkpoint.json"
    try:
        while not first_checkpoint.exists() and process.poll() is None:
            seen.update(player_pids(process.pid))
            time.sleep(0.2)
        while kills < args.kills and process.poll() is None:
            wait_until = time.monotonic() + rng.uniform(5, 20)
            while time.monotonic() < wait_until and process.poll() is None:
                seen.update(player_pids(process.pid))
                time.sleep(0.2)
            players = player_pids(process.pid)
            seen.update(players)
            if not players or process.poll() is not None:
                continue
            victim = rng.choice(players)
            os.kill(victim, signal.SIGKILL)
            kills += 1
            at = time.monotonic() - started
            print(f"  [{at:6.1f} s] kill {kills}: player {victim}", flush=True)
        while process.poll() is None:
            seen.update(player_pids(process.pid))
            time.sleep(0.5)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        reader.join(timeout=10)
    elapsed = time.monotonic() - started

    restarts = sum("failed and is restarted" in line for line in lines)
    found = (re.search(r"Mean Reward: (-?\d+(?:\.\d+)?)", line) for line in lines)
    rewards = [float(match.group(1)) for match in found if match]
    status_file = work / "results/chaos/run_logs/training_status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {}
    listed = status.get("3DBall", {}).get("checkpoints", [])
    steps = {c["steps"] // CHECKPOINT_INTERVAL * CHECKPOINT_INTERVAL for c in listed}
    expected = set(range(CHECKPOINT_INTERVAL, args.max_steps + 1, CHECKPOINT_INTERVAL))
    missing_files = [
        name
        for c in listed
        for name in (c["file_path"], *c["auxillary_file_paths"])
        if not (work / name).exists()  # paths are relative to the results folder's parent
    ]
    lost = len(expected - steps) + len(missing_files)
    left = [pid for pid in seen if alive(pid)]
    print()
    print(f"exit code {process.returncode} after {elapsed:.0f} s; run folder {work}")
    print(f"restarts survived: {restarts}/{kills} kills")
    last = rewards[-5:]
    print(
        f"final mean reward: {rewards[-1] if rewards else float('nan'):.2f} "
        f"(last {len(last)} summaries: {sum(last) / max(1, len(last)):.2f})"
    )
    print(f"checkpoints lost: {lost} (of {len(expected)} expected)")
    print(f"player processes left running: {len(left)} (of {len(seen)} seen)")
    for pid in left:
        os.kill(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
