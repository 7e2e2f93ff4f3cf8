"""Parameter randomization on built-in 3DBall: PPO trained with the ball's mass and scale drawn
at random against PPO trained on the defaults, both tested on values neither saw.

    python bench/randomization.py --steps 400000 --seeds 0 1 2 --episodes 48

Per seed, SB3 PPO trains twice for ``--steps`` agent steps on built-in 3DBall (UnityVecEnv over
the players ``configs/3DBall.yaml`` asks for), with that config's hyperparameters as
``unity-sb3 translate`` gives them (VecNormalize for ``normalize: true``, the entropy
coefficient's linear schedule), the same seed and the same player seeds:

- ``defaults``: no environment parameters (mass 1, scale 1);
- ``randomized``: ``mass`` ~ U(0.5, 10) and ``scale`` ~ U(0.75, 3), ML-Agents'
  ``config/ppo/3DBall_randomize.yaml`` (``configs/3DBall_randomize.yaml``), sent as samplers
  on each player's ``EnvironmentParametersChannel`` (``set_uniform_sampler_parameters``): the
  player draws new values for every ball at each episode start.

Then both final policies play (most likely actions, observations normalized with their own
training statistics) the first episode of ``--episodes`` balls (rounded up to whole areas of
12) under each test condition, the parameters set as constants: the defaults (control), and
``--conditions`` (default mass 12, 20, 40 and 80, scale 3.5, and mass 40 with scale 3.5:
heavier and larger balls than either policy saw; the built-in's platform servo slows against
a heavy ball's weight, stalling at mass 5 with the ball at the edge).
Prints a line per seed, policy and condition (mean episode reward, mean episode length in
decisions, share of balls held to the step limit), a table of the means over the seeds and
the randomized policy's reward as a multiple of the default one's per condition. An episode
holds at most 1000 decisions (5000 academy steps), 0.1 each: 100 is a ball never dropped.
Goal (the issue's): the randomized policy holds the ball better on the unseen values.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from cli.sb3_translation import NORMALIZED_OBSERVATION_CLIP, Sb3Plan, translate_behavior
from cli.training_config import parse_run_options
from sb3_ext.schedules import EntropyCoefficientSchedule
from unity_gym.players import get_player
from unity_gym.players.ball3d import DEFAULT_MASS, DEFAULT_SCALE
from unity_gym.sb3_vec_env import UnityVecEnv
from unity_gym.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from unity_gym.side_channel.side_channel import SideChannel

REPO = Path(__file__).resolve().parents[1]
BALL = REPO / "configs/3DBall.yaml"
RANDOMIZED = REPO / "configs/3DBall_randomize.yaml"
BEHAVIOR = "3DBall"
MAX_REWARD = 100.0  # 1000 decisions x 0.1
DEFAULT_CONDITIONS = ["mass=12", "mass=20", "mass=40", "mass=80", "scale=3.5", "mass=40,scale=3.5"]

Condition = dict[str, float]


def _ranges() -> dict[str, tuple[float, float]]:
    """The uniform samplers of configs/3DBall_randomize.yaml: key -> (min, max)."""
    config = yaml.safe_load(RANDOMIZED.read_text())
    ranges = {}
    for key, parameter in config["environment_parameters"].items():
        assert parameter["sampler_type"] == "uniform", parameter
        bounds = parameter["sampler_parameters"]
        ranges[key] = (float(bounds["min_value"]), float(bounds["max_value"]))
    return ranges


def _parse_condition(text: str) -> Condition:
    """``mass=12,scale=3.5`` -> {"mass": 12.0, "scale": 3.5}."""
    condition = {}
    for item in text.split(","):
        key, _, value = item.partition("=")
        condition[key.strip()] = float(value)
    return condition


def _label(condition: Condition) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in condition.items()) or "defaults"


def _plan(steps: int) -> tuple[Sb3Plan, int]:
    """configs/3DBall.yaml's PPO plan for ``steps`` steps, and its number of players."""
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(BALL.read_text()))
    config["behaviors"][BEHAVIOR]["max_steps"] = steps
    options = parse_run_options(config, source=BALL)
    players = int(options.env_settings.num_envs)
    task = get_player("3DBall").tasks[0]
    agents = task.agents_per_area * players
    plan = translate_behavior(BEHAVIOR, options.behaviors[BEHAVIOR], task.behavior_spec, agents)
    assert plan.algorithm == "PPO" and not plan.reward_signals, plan
    return plan, players


def _channels(
    samplers: dict[str, tuple[float, float]], constants: Condition, seed: int
) -> Callable[[int], list[SideChannel]]:
    """Each worker's side channels: an EnvironmentParametersChannel with ``samplers`` (seeded
    per worker and key) and ``constants`` queued, sent with the first reset."""

    def make(index: int) -> list[SideChannel]:
        channel = EnvironmentParametersChannel()
        for number, (key, (low, high)) in enumerate(sorted(samplers.items())):
            channel.set_uniform_sampler_parameters(
                key, low, high, seed=seed * 1000 + index * 10 + number
            )
        for key, value in constants.items():
            channel.set_float_parameter(key, value)
        return [channel]

    return make


@dataclass
class Trained:
    model: BaseAlgorithm
    normalizer: VecNormalize | None
    seconds: float
    train_reward: float  # mean reward of the last 100 training episodes (stochastic actions)


class _EpisodeRewards(BaseCallback):
    """Keeps the returns of finished training episodes (sum of raw rewards per slot)."""

    def __init__(self) -> None:
        super().__init__()
        self.returns: list[float] = []
        self._running: np.ndarray | None = None

    def _on_step(self) -> bool:
        rewards, dones = self.locals["rewards"], self.locals["dones"]
        if self._running is None:
            self._running = np.zeros(len(rewards))
        self._running += rewards  # raw: VecNormalize leaves rewards alone (norm_reward=False)
        self.returns.extend(self._running[dones].tolist())
        self._running[dones] = 0.0
        return True


def _train(
    plan: Sb3Plan, players: int, seed: int, samplers: dict[str, tuple[float, float]]
) -> Trained:
    venv = UnityVecEnv(
        "builtin:3DBall",
        n_envs=players,
        seed=seed,
        side_channels=_channels(samplers, {}, seed) if samplers else None,
    )
    try:
        env: Any = venv
        normalizer = None
        if plan.normalize:
            normalizer = VecNormalize(
                venv,
                norm_obs=True,
                norm_reward=False,
                clip_obs=NORMALIZED_OBSERVATION_CLIP,
                gamma=float(plan.kwargs.get("gamma", 0.99)),
            )
            env = normalizer
        model = plan.algorithm_class()(
            plan.policy, env, seed=seed, device="cpu", verbose=0, **plan.kwargs
        )
        episodes = _EpisodeRewards()
        callbacks: list[BaseCallback] = [episodes]
        if plan.entropy_schedule is not None:
            callbacks.append(EntropyCoefficientSchedule(plan.entropy_schedule))
        started = time.perf_counter()
        model.learn(plan.total_timesteps, callback=callbacks)
        seconds = time.perf_counter() - started
    finally:
        venv.close()
    if normalizer is not None:
        normalizer.training = False
    last = episodes.returns[-100:]
    return Trained(model, normalizer, seconds, statistics.fmean(last) if last else math.nan)


@dataclass
class Score:
    reward: float  # mean episode reward
    length: float  # mean episode length, decisions
    held: float  # share of episodes that reached the step limit without a drop


def _evaluate(trained: Trained, condition: Condition, episodes: int, seed: int) -> Score:
    """The first episode of every ball of ``ceil(episodes / 12)`` areas under ``condition``
    (constants), most likely actions."""
    areas = max(1, math.ceil(episodes / get_player("3DBall").tasks[0].agents_per_area))
    venv = UnityVecEnv(
        "builtin:3DBall",
        n_envs=1,
        seed=seed,
        num_areas=areas,
        side_channels=_channels({}, condition, seed),
    )
    try:
        obs = venv.reset()
        n = venv.num_envs
        returns, lengths = np.zeros(n), np.zeros(n, dtype=np.int64)
        finished, held = np.zeros(n, dtype=bool), np.zeros(n, dtype=bool)
        while not finished.all():
            if trained.normalizer is not None:
                obs = trained.normalizer.normalize_obs(obs)
            actions, _ = trained.model.predict(obs, deterministic=True)
            obs, rewards, dones, infos = venv.step(actions)
            running = ~finished
            returns[running] += rewards[running]
            lengths[running] += 1
            for i in np.flatnonzero(dones & running):
                held[i] = bool(infos[i].get("TimeLimit.truncated", False))
            finished |= dones
    finally:
        venv.close()
    return Score(float(returns.mean()), float(lengths.mean()), float(held.mean()))


def _mean(scores: Sequence[Score], field: str) -> float:
    return statistics.fmean(getattr(s, field) for s in scores)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=400000, help="agent steps per training")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--episodes", type=int, default=48, help="test episodes per condition")
    parser.add_argument(
        "--conditions",
        nargs="+",
        default=DEFAULT_CONDITIONS,
        help="test conditions besides the defaults, e.g. mass=12,scale=3.5",
    )
    parser.add_argument("--torch-threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.torch_threads)
    ranges = _ranges()
    conditions = [{"mass": DEFAULT_MASS, "scale": DEFAULT_SCALE}] + [
        _parse_condition(c) for c in args.conditions
    ]
    plan, players = _plan(args.steps)
    print(
        f"3DBall: PPO {args.steps} agent steps, {players} players ({plan.n_agents} agents), "
        f"randomized: {', '.join(f'{k} ~ U({lo:g}, {hi:g})' for k, (lo, hi) in ranges.items())}",
        flush=True,
    )
    policies = {"defaults": {}, "randomized": ranges}
    scores: dict[tuple[str, int], list[Score]] = {}
    for seed in args.seeds:
        for name, samplers in policies.items():
            trained = _train(plan, players, seed, samplers)
            print(
                f"seed {seed} {name}: trained in {trained.seconds:.0f} s "
                f"({args.steps / trained.seconds:.0f} steps/s), last 100 training episodes "
                f"{trained.train_reward:.1f}",
                flush=True,
            )
            for index, condition in enumerate(conditions):
                score = _evaluate(trained, condition, args.episodes, 10_000 + seed)
                scores.setdefault((name, index), []).append(score)
                print(
                    f"  {_label(condition):20s} reward {score.reward:6.1f}  length "
                    f"{score.length:6.1f}  held {score.held:.2f}",
                    flush=True,
                )
    print(
        f"\nMeans over seeds {args.seeds} (first episodes of {args.episodes}+ balls per "
        "condition; reward [per seed], length in decisions, share held to the limit):"
    )
    print(f"  {'condition':22s} {'defaults':>33s} {'randomized':>33s}  randomized/defaults")
    for index, condition in enumerate(conditions):
        line = f"  {_label(condition):22s}"
        means = []
        for name in policies:
            runs = scores[(name, index)]
            each = "/".join(f"{s.reward:.0f}" for s in runs)
            reward = _mean(runs, "reward")
            means.append(reward)
            line += f" {reward:6.1f} [{each:>11s}] {_mean(runs, 'length'):6.0f} "
            line += f"{_mean(runs, 'held'):4.2f}"
        line += f"  x{means[1] / means[0]:.2f}" if means[0] > 0 else "  -"
        print(line, flush=True)


if __name__ == "__main__":
    main_bench()
