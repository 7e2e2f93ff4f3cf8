"""ML-Agents' WallJump curriculum against training straight on the hardest wall, same budget.

    python bench/curriculum.py --steps 150000 --seeds 0 1 2 --jobs 2

Per seed, SB3 PPO trains built-in WallJump's ``BigWallJump`` behavior twice for the same
number of agent steps, with the hyperparameters of ML-Agents' ``WallJump_curriculum.yaml``
(buffer 2048, batch 128, 3 epochs, learning rate 3e-4 decaying linearly, beta 0.005, epsilon
0.2, gamma 0.99, lambda 0.95, two layers of 256, no normalization):

- ``straight``: ``big_wall_height`` 8.0 (Unity's big wall, the last lesson) from the start;
- ``curriculum``: that config's lessons for ``big_wall_height``: uniform(0, 4), uniform(4, 7),
  uniform(6, 8), then 8.0, moving on at 10%, 30% and 50% of the budget (``measure: progress``,
  ``min_lesson_length: 100``), run by ``sb3_ext.curriculum``'s :class:`CurriculumCallback` and
  sent to the player through an ``EnvironmentParametersChannel``.

Both are then evaluated on the hardest setting (``big_wall_height`` 8.0) in a fresh player:
``--eval-areas`` agents play ``--eval-episodes`` episodes each with sampled actions, counting
each agent's first episodes only (so short successful episodes are not over-counted), and the
success rate is the share that reached the goal (a positive return). Also printed: the success
rate of the last training episodes at height 8 (straight) or in the last lesson (curriculum),
the lessons reached and agent steps per second. ``--jobs 2`` trains two runs at once (one
process each, with its own player).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Any

import numpy as np

BEHAVIOR = "BigWallJump"
PARAMETER = "big_wall_height"
HARDEST = 8.0
MODES = ("straight", "curriculum")


@dataclass
class Run:
    """One run's numbers."""

    mode: str
    seed: int
    success: float  # evaluation at the hardest setting
    episodes: int  # evaluation episodes
    train_success: float  # last training episodes at the final setting
    lessons: str  # lesson numbers reached, in order
    rate: float  # agent steps per second while training


def _lessons(seed: int) -> Any:
    from sb3_ext.curriculum import CompletionCriteria, Curriculum, Lesson
    from unity_gym.side_channel.environment_parameters_channel import (
        ParameterSampler,
        SamplerTypes,
    )

    def done_at(threshold: float) -> CompletionCriteria:
        return CompletionCriteria(
            behavior=BEHAVIOR, measure="progress", threshold=threshold, min_lesson_length=100
        )

    def uniform(low: float, high: float) -> ParameterSampler:
        return ParameterSampler(SamplerTypes.UNIFORM, (low, high), seed)

    lessons = [
        Lesson("Lesson0", uniform(0.0, 4.0), done_at(0.1)),
        Lesson("Lesson1", uniform(4.0, 7.0), done_at(0.3)),
        Lesson("Lesson2", uniform(6.0, 8.0), done_at(0.5)),
        Lesson("Lesson3", HARDEST),
    ]
    return Curriculum({PARAMETER: lessons})


def _env(channel: Any, areas: int, seed: int) -> Any:
    from stable_baselines3.common.vec_env import VecMonitor

    from unity_gym.sb3_vec_env import UnityVecEnv

    vec = UnityVecEnv(
        "builtin:WallJump",
        1,
        BEHAVIOR,
        num_areas=areas,
        seed=seed,
        side_channels=lambda index: [channel],
    )
    return VecMonitor(vec)


def _evaluate(model: Any, areas: int, episodes: int, seed: int) -> tuple[float, int]:
    """Success rate at the hardest setting over each agent's first ``episodes`` episodes."""
    from sb3_ext.curriculum import channel_sink
    from unity_gym.side_channel.environment_parameters_channel import (
        EnvironmentParametersChannel,
    )

    channel = EnvironmentParametersChannel()
    channel_sink([channel])({PARAMETER: HARDEST})
    env = _env(channel, areas, seed + 1000)
    try:
        outcomes: list[list[float]] = [[] for _ in range(env.num_envs)]
        obs = env.reset()
        while min(len(o) for o in outcomes) < episodes:
            actions, _ = model.predict(obs, deterministic=False)
            obs, _, dones, infos = env.step(actions)
            for slot in np.flatnonzero(dones):
                if len(outcomes[slot]) < episodes:
                    outcomes[slot].append(float(infos[slot]["episode"]["r"] > 0.0))
    finally:
        env.close()
    flat = [v for o in outcomes for v in o]
    return statistics.fmean(flat), len(flat)


def train(mode: str, seed: int, steps: int, areas: int, eval_areas: int, episodes: int) -> Run:
    """Train one run (in its own process) and evaluate it at the hardest setting."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    from sb3_ext.curriculum import CurriculumCallback, channel_sink
    from unity_gym.side_channel.environment_parameters_channel import (
        EnvironmentParametersChannel,
    )

    torch.set_num_threads(1)
    channel = EnvironmentParametersChannel()
    sink = channel_sink([channel])
    curriculum = _lessons(seed)
    if mode == "straight":
        sink({PARAMETER: HARDEST})  # sent before the first reset, as the lessons are
    env = _env(channel, areas, seed)
    reached: list[int] = [0 if mode == "curriculum" else 3]
    last: list[float] = []  # outcomes of the episodes at the final setting

    class Watch(BaseCallback):
        def _on_step(self) -> bool:
            number = curriculum.lesson_numbers[PARAMETER] if mode == "curriculum" else 3
            if number != reached[-1]:
                reached.append(number)
            if number == 3:
                for info in self.locals["infos"]:
                    if "episode" in info:
                        last.append(float(info["episode"]["r"] > 0.0))
            return True

    callbacks: list[BaseCallback] = [Watch()]
    if mode == "curriculum":
        callbacks.insert(0, CurriculumCallback(curriculum, apply=sink, behavior=BEHAVIOR))
    n_steps = max(1, 2048 // env.num_envs)  # ML-Agents' buffer_size 2048
    try:
        model = PPO(
            "MultiInputPolicy",
            env,
            n_steps=n_steps,
            batch_size=128,
            n_epochs=3,
            learning_rate=lambda remaining: 3e-4 * remaining,
            ent_coef=0.005,
            clip_range=0.2,
            gamma=0.99,
            gae_lambda=0.95,
            policy_kwargs={"net_arch": [256, 256]},
            seed=seed,
            verbose=0,
        )
        started = time.perf_counter()
        model.learn(steps, callback=callbacks)
        rate = steps / (time.perf_counter() - started)
    finally:
        env.close()
    success, count = _evaluate(model, eval_areas, episodes, seed)
    tail = last[-300:]
    return Run(
        mode,
        seed,
        success,
        count,
        statistics.fmean(tail) if tail else math.nan,
        "->".join(str(n) for n in reached),
        rate,
    )


def _line(run: Run) -> str:
    return (
        f"WallJump seed {run.seed} {run.mode:10s}: success at {HARDEST:g} {run.success:.3f} "
        f"({run.episodes} episodes), last training episodes {run.train_success:.3f}, "
        f"lessons {run.lessons}, {run.rate:.0f} steps/s"
    )


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=150000, help="agent steps per run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--areas", type=int, default=16, help="training areas (agents)")
    parser.add_argument("--eval-areas", type=int, default=32)
    parser.add_argument("--eval-episodes", type=int, default=3, help="per evaluation agent")
    parser.add_argument("--jobs", type=int, default=1, help="runs trained at once")
    parser.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    args = parser.parse_args()
    jobs = [(mode, seed) for seed in args.seeds for mode in args.modes]
    results: dict[str, list[Run]] = {mode: [] for mode in args.modes}
    settings = (args.steps, args.areas, args.eval_areas, args.eval_episodes)
    with ProcessPoolExecutor(args.jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(train, mode, seed, *settings) for mode, seed in jobs]
        for future in futures:
            run = future.result()
            results[run.mode].append(run)
            print(_line(run), flush=True)
    print(
        f"\nWallJump BigWallJump, {args.steps} agent steps per run, seeds {args.seeds}: success "
        f"rate at big_wall_height {HARDEST:g} after training (sampled actions)"
    )
    means = {}
    for mode, runs in results.items():
        means[mode] = statistics.fmean(r.success for r in runs)
        each = " ".join(f"{r.success:.3f}" for r in sorted(runs, key=lambda r: r.seed))
        rate = statistics.fmean(r.rate for r in runs)
        print(f"  {mode:10s} success {means[mode]:.3f} [{each}]  {rate:5.0f} steps/s", flush=True)
    if set(means) == set(MODES):
        straight, curriculum = means["straight"], means["curriculum"]
        if straight > 0:
            ratio = f"x{curriculum / straight:.1f}"
        else:
            ratio = "x inf" if curriculum > 0 else "undefined (both 0)"
        met = curriculum > 0 and curriculum >= 2 * straight
        print(f"  curriculum / straight: {ratio} (goal x2: {'met' if met else 'not met'})")


if __name__ == "__main__":
    main_bench()
