"""Records/s of ``unity_gym.demo.load_demonstration`` on the ML-Agents release 21 demos.

    python bench/demo_loading.py [--demos DIR] [--seconds 0.3]

For each fixture demo it prints our loader's speed and, measured in the same run, that of a
straightforward loader built the way ML-Agents' ``demo_loader`` works: parse each record on
its own, then call ``steps_from_proto([record.agent_info], spec)`` for it and collect the
per-record arrays in Python lists (ML-Agents calls it twice per record; the baseline calls it
once, so its ratio is conservative). Both use this project's protobuf runtime.

When ``MLAGENTS_PYTHON`` names a Python with the official ``mlagents`` 1.1.0 (see
``bench/mlagents_venv.sh``; ``mlagents`` itself also needs h5py, cattrs and torch),
``mlagents.trainers.demo_loader.demo_to_buffer(path, 1)`` is timed too, in one subprocess
(imports excluded); the protobuf backend it ran on is printed, since mlagents pins
protobuf 3.20, which is pure Python on Python 3.11.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from google.protobuf.internal import api_implementation

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unity_gym.base_env import BehaviorSpec
from unity_gym.communicator_objects.agent_info_action_pair_pb2 import AgentInfoActionPairProto
from unity_gym.communicator_objects.demonstration_meta_pb2 import DemonstrationMetaProto
from unity_gym.demo import load_demonstration
from unity_gym.rpc_utils import steps_from_proto

DEFAULT_DEMOS = Path(__file__).resolve().parents[1] / "tests/fixtures/mlagents-r21/demos"

_OFFICIAL = """
import json, statistics, sys, time
from google.protobuf.internal import api_implementation
from mlagents.trainers.demo_loader import demo_to_buffer
seconds = float(sys.argv[1])
result = {"backend": api_implementation.Type(), "times": {}, "errors": {}}
for path in sys.argv[2:]:
    try:
        demo_to_buffer(path, 1)  # warm-up
    except Exception as err:
        result["errors"][path] = f"{type(err).__name__}: {err}"
        continue
    times = []
    while not times or (sum(times) < seconds and len(times) < 20):
        start = time.perf_counter()
        demo_to_buffer(path, 1)
        times.append(time.perf_counter() - start)
    result["times"][path] = statistics.median(times)
print(json.dumps(result))
"""


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if byte < 0x80:
            return value, pos
        shift += 7


def baseline_load(path: Path, spec: BehaviorSpec) -> dict[str, Any]:
    """The straightforward loader: one parse and one steps_from_proto call per record."""
    files = sorted(path.glob("*.demo")) if path.is_dir() else [path]
    observations: list[list[np.ndarray]] = [[] for _ in spec.observation_specs]
    rewards, dones, actions = [], [], []
    for file in files:
        with open(file, "rb") as f:
            data = f.read()
        length, pos = _varint(data, 0)
        expected = DemonstrationMetaProto.FromString(data[pos : pos + length]).number_steps
        length, pos = _varint(data, 33)
        pos += length  # brain parameters
        for _ in range(expected):
            length, pos = _varint(data, pos)
            record = AgentInfoActionPairProto()
            record.ParseFromString(data[pos : pos + length])
            pos += length
            decision, terminal = steps_from_proto([record.agent_info], spec)
            steps = terminal if len(terminal) else decision
            for i, obs in enumerate(steps.obs):
                observations[i].append(obs[0])
            rewards.append(float(steps.reward[0]))
            dones.append(len(terminal) == 1)
            action = record.action_info
            actions.append(
                list(action.continuous_actions)
                + list(action.discrete_actions)
                + list(action.vector_actions_deprecated)
            )
    return {
        "observations": [np.stack(o) for o in observations],
        "rewards": np.array(rewards, dtype=np.float32),
        "dones": np.array(dones),
        "actions": actions,
    }


def median_time(fn: Callable[[], Any], seconds: float, max_runs: int = 50) -> float:
    fn()  # warm-up
    times: list[float] = []
    while not times or (sum(times) < seconds and len(times) < max_runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def official_times(paths: list[Path], seconds: float) -> dict[str, Any] | None:
    """Median seconds of mlagents' demo_to_buffer per path, or None when not available."""
    python = os.environ.get("MLAGENTS_PYTHON")
    if not python:
        print("MLAGENTS_PYTHON not set: the official mlagents loader is not timed.")
        return None
    try:
        done = subprocess.run(
            [python, "-c", _OFFICIAL, str(seconds), *map(str, paths)],
            capture_output=True,
            text=True,
            timeout=300,
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        print(f"MLAGENTS_PYTHON={python}: the official loader could not be timed ({err}).")
        return None
    if done.returncode != 0:
        last = done.stderr.strip().splitlines()[-1:] or ["no output"]
        print(f"MLAGENTS_PYTHON={python}: the official loader could not run ({last[0]}).")
        return None
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--demos", type=Path, default=DEFAULT_DEMOS)
    parser.add_argument("--seconds", type=float, default=0.3, help="time per loader and file")
    args = parser.parse_args()
    if not args.demos.is_dir():
        sys.exit(f"Fixture demos not found at {args.demos}; pass --demos DIR.")
    paths = sorted(args.demos.glob("*.demo")) + sorted(
        p for p in args.demos.iterdir() if p.is_dir()
    )
    official = official_times(paths, args.seconds)
    header = f"{'demo':28} {'records':>7} {'ours rec/s':>11} {'baseline rec/s':>15} {'ratio':>7}"
    if official:
        header += f" {'mlagents rec/s':>15} {'ratio':>7}"
    print(header)
    ratios, official_ratios = [], []
    for path in paths:
        demo = load_demonstration(path)
        n = len(demo)
        ours = median_time(lambda p=path: load_demonstration(p), args.seconds)
        spec = demo.behavior_spec
        check = baseline_load(path, spec)
        for i, obs_spec in enumerate(spec.observation_specs):
            if not obs_spec.is_visual:  # same values as the straightforward loader
                np.testing.assert_array_equal(check["observations"][i], demo.observations[i])
        np.testing.assert_array_equal(check["rewards"], demo.rewards)
        base = median_time(lambda p=path, s=spec: baseline_load(p, s), args.seconds, 5)
        ratios.append(base / ours)
        line = f"{path.name:28} {n:7d} {n / ours:11.0f} {n / base:15.0f} {base / ours:6.1f}x"
        if official:
            seconds = official["times"].get(str(path))
            if seconds is None:
                line += f" {'failed':>15}"
            else:
                official_ratios.append(seconds / ours)
                line += f" {n / seconds:15.0f} {seconds / ours:6.1f}x"
        print(line, flush=True)
    geo = float(np.exp(np.mean(np.log(ratios))))
    print(f"geometric mean speed-up over the per-record baseline: {geo:.1f}x")
    if official:
        for path, error in official["errors"].items():
            print(f"mlagents demo_to_buffer failed on {Path(path).name}: {error}")
        if official_ratios:
            geo = float(np.exp(np.mean(np.log(official_ratios))))
            print(
                f"geometric mean speed-up over mlagents demo_to_buffer: {geo:.1f}x (protobuf "
                f"backend: mlagents {official['backend']}, ours {api_implementation.Type()})"
            )


if __name__ == "__main__":
    main()
