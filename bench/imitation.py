"""Imitation on built-in 3DBall: PPO with and without behavioral cloning, and GAIL with SAC.

    python bench/imitation.py --seeds 0 1 2

1. The expert: ``configs/3DBall.yaml`` trains once (seed 100, ``--expert-steps``) and its
   exported ``.onnx`` records ``--episodes`` episodes with ``unity-sb3 record-demo --model``
   (``--expert-model`` skips the training and records from the given model instead).
2. Behavioral cloning: per seed, ``configs/3DBall.yaml`` as it is (PPO alone) and with
   ``behavioral_cloning`` from that recording (``--bc-strength``, decaying over
   ``--bc-decay`` steps, minibatches of ``--bc-batch``), ``--steps`` each. Prints the agent
   steps at which each run's summary mean reward first reaches ``--target`` (90 by default)
   and the ratio. ``--skip ppo`` leaves out the PPO-alone runs (e.g. to try other BC settings
   against runs already measured; the runs are deterministic per seed).
3. GAIL with SAC: per seed, SAC on 3DBall with GAIL from the recording and no extrinsic
   reward, ``--gail-steps``; prints the mean episode reward of the last quarter of training
   against uniformly random play.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from learn_in_process import learn_in_process

REPO = Path(__file__).resolve().parents[1]
BALL = REPO / "configs/3DBall.yaml"
SUMMARY = 12000


def _ppo(
    steps: int, seed: int, demo: Path | None, strength: float, decay: int, batch: int | None
) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(BALL.read_text()))
    behavior = config["behaviors"]["3DBall"]
    behavior.update(max_steps=steps, summary_freq=SUMMARY, checkpoint_interval=steps)
    if demo is not None:
        behavior["behavioral_cloning"] = {
            "demo_path": str(demo),
            "strength": strength,
            "steps": decay,
        }
        if batch:
            behavior["behavioral_cloning"]["batch_size"] = batch
    config["env_settings"]["seed"] = seed
    return config


def _gail_sac(steps: int, seed: int, demo: Path) -> dict[str, Any]:
    return {
        "behaviors": {
            "3DBall": {
                "trainer_type": "sac",
                "hyperparameters": {
                    "batch_size": 256,
                    "buffer_size": 100000,
                    "buffer_init_steps": 2000,
                    "steps_per_update": 10,
                    "learning_rate": 0.0003,
                    "init_entcoef": 0.5,
                },
                "network_settings": {"normalize": True, "hidden_units": 64, "num_layers": 2},
                "reward_signals": {
                    "gail": {
                        "strength": 1.0,
                        "gamma": 0.99,
                        "use_actions": True,
                        "demo_path": str(demo),
                    }
                },
                "max_steps": steps,
                "summary_freq": max(1000, steps // 20),
                "checkpoint_interval": steps,
                "time_horizon": 64,
            }
        },
        "env_settings": {"env_path": "builtin:3DBall", "num_envs": 1, "seed": seed},
        "engine_settings": {"no_graphics": True},
    }


def _rewards(events_dir: Path) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(s.step, s.value) for s in events.Scalars("Environment/Cumulative Reward")]


def _first_reaching(curve: list[tuple[int, float]], target: float) -> int | None:
    return next((step for step, value in curve if value >= target), None)


def _record(model: Path, episodes: int, out: Path) -> None:
    command = [sys.executable, "-m", "cli.main", "record-demo", "builtin:3DBall"]
    command += ["--model", str(model), "--episodes", str(episodes), "-o", str(out)]
    subprocess.run(command, check=True, cwd=REPO)


def _random_return(episodes: int = 48) -> float:
    from stable_baselines3.common.vec_env import VecMonitor

    from unity_gym.sb3_vec_env import UnityVecEnv

    env = VecMonitor(UnityVecEnv("builtin:3DBall", seed=7))
    returns: list[float] = []
    try:
        env.reset()
        rng = np.random.default_rng(0)
        while len(returns) < episodes:
            actions = rng.uniform(-1, 1, (env.num_envs, *(env.action_space.shape or ())))
            _, _, _, infos = env.step(actions)
            returns += [info["episode"]["r"] for info in infos if "episode" in info]
    finally:
        env.close()
    return statistics.fmean(returns)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=480000)
    parser.add_argument("--target", type=float, default=90.0)
    parser.add_argument("--expert-steps", type=int, default=240000)
    parser.add_argument("--expert-model", type=Path, default=None)
    parser.add_argument("--episodes", type=int, default=24, help="episodes recorded")
    parser.add_argument("--bc-strength", type=float, default=2.0)
    parser.add_argument("--bc-decay", type=int, default=200000)
    parser.add_argument("--bc-batch", type=int, default=256, help="0: the trainer's")
    parser.add_argument("--gail-steps", type=int, default=60000)
    parser.add_argument("--skip", choices=("ppo", "bc", "gail"), nargs="*", default=[])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model = args.expert_model
        if model is None:
            expert = _ppo(args.expert_steps, 100, None, 0, 0, None)
            learn_in_process(expert, folder, "expert")
            model = folder / "expert/3DBall.onnx"
        demo = folder / "3DBall.demo"
        _record(model, args.episodes, demo)
        if "bc" not in args.skip:
            reached: dict[str, list[int | None]] = {"ppo": [], "ppo+bc": []}
            for seed in args.seeds:
                arms = [("ppo", None), ("ppo+bc", demo)]
                for label, source in [a for a in arms if a[0] not in args.skip]:
                    run = f"{label.replace('+', '_')}_{seed}"
                    config = _ppo(
                        args.steps, seed, source, args.bc_strength, args.bc_decay, args.bc_batch
                    )
                    elapsed = learn_in_process(config, folder, run)
                    curve = _rewards(folder / run / "3DBall")
                    step = _first_reaching(curve, args.target)
                    reached[label].append(step)
                    print(
                        f"3DBall seed {seed} {label}: first summary >= {args.target} at "
                        f"{step} steps; final {curve[-1][1]:.1f}; {args.steps / elapsed:.0f} "
                        "steps/s",
                        flush=True,
                    )
            print(f"\n3DBall, agent steps until the summary mean reward reaches {args.target}:")
            for label, steps in reached.items():
                print(f"  {label:7s} {steps}")
            pairs = []
            if reached["ppo"] and reached["ppo+bc"]:
                pairs = [(a, b) for a, b in zip(*reached.values(), strict=True) if a and b]
            if pairs:
                ratio = statistics.fmean(b / a for a, b in pairs)
                print(f"  ppo+bc / ppo: {ratio:.2f} (mean over seeds that reached it)")
        if "gail" not in args.skip:
            random_return = _random_return()
            finals = []
            for seed in args.seeds:
                run = f"gail_sac_{seed}"
                learn_in_process(_gail_sac(args.gail_steps, seed, demo), folder, run)
                curve = _rewards(folder / run / "3DBall")
                since = args.gail_steps * 0.75
                final = statistics.fmean(v for s, v in curve if s > since)
                finals.append(final)
                print(f"3DBall seed {seed} SAC+GAIL (no extrinsic): last quarter {final:.2f}")
            print(
                f"\nSAC + GAIL alone, {args.gail_steps} steps: {statistics.fmean(finals):.2f} "
                f"{[round(f, 2) for f in finals]}; uniformly random play: {random_return:.2f}"
            )


if __name__ == "__main__":
    main_bench()
