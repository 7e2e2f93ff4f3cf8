"""Discrete SAC through ``unity-sb3 learn`` against random play and PPO, same agent-step budget.

    python bench/discrete_sac.py --scene gridworld --steps 20000 --seeds 0 1 2
    python bench/discrete_sac.py --scene basic --steps 6000 --seeds 0 1 2

Per seed, on the built-in player: ML-Agents' SAC configuration of the scene (``basic``: its
``config/sac/Basic.yaml``, kept in the test fixtures; ``gridworld``: the values of its
``config/sac/GridWorld.yaml`` with ``configs/GridWorld.yaml``'s players and areas) trained by
``unity-sb3 learn`` (DiscreteSAC), our PPO configuration ``configs/<Scene>.yaml`` trained for the
same number of agent steps, and uniformly random allowed actions for as many steps. Prints each
run's mean episode reward in its last summary window (stochastic actions, as mlagents-learn's
console line; all episodes for random play), the final model's mean reward played
deterministically (as ``--inference --deterministic``) on unseen episodes, and agent steps per
second. Training runs in this process with the torch threads ``unity-sb3 learn`` would use
(see ``cli/torch_threads.py``). ``--init-entcoef`` replaces ML-Agents' ``init_entcoef`` (the
only change to its configuration besides the step budget and ``summary_freq``), to see how the
starting entropy coefficient shapes short runs.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from learn_in_process import learn_in_process
from sb3_contrib import MaskablePPO
from stable_baselines3.common.vec_env import VecMonitor

from cli.torch_threads import configure_torch_threads
from sb3_ext.algorithms import DiscreteSAC
from unity_gym.sb3_vec_env import UnityVecEnv

REPO = Path(__file__).resolve().parents[1]
SAC_BASIC = REPO / "tests/fixtures/mlagents-r21/configs/sac/Basic.yaml"
# ML-Agents release 21's config/sac/GridWorld.yaml behavior section.
SAC_GRIDWORLD = REPO / "configs/GridWorld_sac.yaml"
SCENES = {"basic": "Basic", "gridworld": "GridWorld"}


def _configs(
    scene: str, steps: int, summary: int, seed: int, init_entcoef: float | None
) -> dict[str, dict[str, Any]]:
    """Trainer configurations by label, each for ``steps`` agent steps."""
    name = SCENES[scene]
    ppo = yaml.safe_load((REPO / f"configs/{name}.yaml").read_text())
    sac: dict[str, Any] = yaml.safe_load(
        (SAC_BASIC if scene == "basic" else SAC_GRIDWORLD).read_text()
    )
    if init_entcoef is not None:
        sac["behaviors"][name]["hyperparameters"]["init_entcoef"] = init_entcoef
    sac["env_settings"] = dict(ppo["env_settings"])
    sac["engine_settings"] = dict(ppo.get("engine_settings", {}))
    configs = {"DiscreteSAC": sac, "PPO": ppo}
    for config in configs.values():
        behavior = config["behaviors"][name]
        behavior.update(max_steps=steps, summary_freq=summary, checkpoint_interval=steps)
        config["env_settings"]["seed"] = seed
    return configs


@dataclass
class Run:
    """One run's numbers: last summary window, deterministic play, agent steps per second."""

    window: float
    deterministic: float | None
    rate: float


def _last_window_reward(events_dir: Path) -> float:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir))
    events.Reload()
    return float(events.Scalars("Environment/Cumulative Reward")[-1].value)


Chooser = Callable[[Any, np.ndarray], np.ndarray]


def _play(config: dict[str, Any], seed: int, choose: Chooser, steps: int) -> float:
    """Mean return of the episodes finished in ``steps`` agent steps of ``choose(obs, masks)``."""
    settings = config["env_settings"]
    env = VecMonitor(
        UnityVecEnv(
            settings["env_path"],
            n_envs=settings.get("num_envs", 1),
            num_areas=settings.get("num_areas", 1),
            seed=seed,
        )
    )
    returns: list[float] = []
    try:
        obs = env.reset()
        done_steps = 0
        while done_steps < steps:
            masks = np.asarray(env.env_method("action_masks"))
            obs, _, _, infos = env.step(choose(obs, masks))
            done_steps += env.num_envs
            returns += [float(info["episode"]["r"]) for info in infos if "episode" in info]
    finally:
        env.close()
    return statistics.fmean(returns) if returns else float("nan")


def _train(config: dict[str, Any], name: str, folder: Path, label: str, evaluation: int) -> Run:
    elapsed = learn_in_process(config, folder, label)
    cls = DiscreteSAC if label == "DiscreteSAC" else MaskablePPO
    model = cls.load(str(folder / label / f"{name}.zip"), device="cpu")

    def choose(obs: Any, masks: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(obs, deterministic=True, action_masks=masks)
        return np.asarray(actions)

    seed = config["env_settings"]["seed"] + 1000  # episodes the training did not see
    deterministic = _play(config, seed, choose, evaluation)
    steps = config["behaviors"][name]["max_steps"]
    return Run(_last_window_reward(folder / label / name), deterministic, steps / elapsed)


def _random_play(config: dict[str, Any], steps: int) -> Run:
    """Uniformly random allowed actions for ``steps`` agent steps."""
    seed = config["env_settings"]["seed"]
    rng = np.random.default_rng(seed)

    def choose(obs: Any, masks: np.ndarray) -> np.ndarray:
        return np.asarray((rng.random(masks.shape) * masks).argmax(axis=1))

    started = time.perf_counter()
    mean = _play(config, seed, choose, steps)
    return Run(mean, None, steps / (time.perf_counter() - started))


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scene", choices=sorted(SCENES), default="gridworld")
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--summary", type=int, default=None, help="default: steps / 10")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--evaluation-steps", type=int, default=2000)
    parser.add_argument(
        "--init-entcoef", type=float, default=None, help="override ML-Agents' init_entcoef"
    )
    parser.add_argument(
        "--runs",
        nargs="+",
        choices=["random", "DiscreteSAC", "PPO"],
        default=["random", "DiscreteSAC", "PPO"],
    )
    args = parser.parse_args()
    configure_torch_threads(None, visual=args.scene == "gridworld")
    name = SCENES[args.scene]
    summary = args.summary or max(1, args.steps // 10)
    results: dict[str, list[Run]] = {"random": [], "DiscreteSAC": [], "PPO": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            configs = _configs(args.scene, args.steps, summary, seed, args.init_entcoef)
            if "random" in args.runs:
                results["random"].append(_random_play(configs["PPO"], args.steps))
            for label, config in configs.items():
                if label in args.runs:
                    folder = Path(tmp) / f"seed{seed}"
                    folder.mkdir(exist_ok=True)
                    run = _train(config, name, folder, label, args.evaluation_steps)
                    results[label].append(run)
            line = ", ".join(f"{k} {v[-1].window:.3f}" for k, v in results.items() if v)
            print(f"{name} seed {seed}, {args.steps} agent steps: {line}", flush=True)
    entcoef = "" if args.init_entcoef is None else f", SAC init_entcoef {args.init_entcoef}"
    print(
        f"\n{name}, {args.steps} agent steps, seeds {args.seeds}{entcoef}: mean reward in the "
        f"last summary window (deterministic play over {args.evaluation_steps} agent steps)"
    )
    for label, runs in results.items():
        if not runs:
            continue
        windows = " ".join(f"{r.window:.3f}" for r in runs)
        line = f"  {label:12s} {statistics.fmean(r.window for r in runs):7.3f}  [{windows}]"
        played = [r.deterministic for r in runs if r.deterministic is not None]
        if played:
            each = " ".join(f"{d:.3f}" for d in played)
            line += f"  deterministic {statistics.fmean(played):7.3f} [{each}]"
        rate = statistics.fmean(r.rate for r in runs)
        print(f"{line}  {rate:6.0f} agent-steps/s", flush=True)


if __name__ == "__main__":
    main_bench()
