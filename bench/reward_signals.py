"""Curiosity and RND against the extrinsic reward alone on built-in Pyramids, same budget.

    python bench/reward_signals.py --steps 300000 --seeds 0 1 2

Per seed, ``unity-sb3 learn`` trains three runs of the same PPO configuration for the same
number of agent steps: ``configs/Pyramids.yaml`` (extrinsic + curiosity),
``configs/PyramidsRND.yaml`` (extrinsic + RND) and ``configs/Pyramids.yaml`` without its
curiosity signal (extrinsic only). Pyramids pays only for reaching the gold brick after
pressing a switch, so the environment's ``Pyramids/SuccessRate`` (episodes that reached it) is
the measure. Prints, per run, the success rate and the mean episode reward over the last
``--window`` fraction of training (the mean of the summaries written there, each the mean of
its episodes) and the switch rate (episodes that pressed the switch) there, the success rate
of the whole run and agent steps per second; then the means per
signal and each intrinsic signal's success rate as a multiple of the extrinsic-only one.
``--rooms 0`` sets the built-in's ``rooms`` parameter to run one open area instead of Unity's
3 x 3 rooms (the default since 2026-12-02; every run recorded before then had the open area);
``--area-size`` sets ``areaSize`` (default 20);
``--strength`` replaces the intrinsic signal's ``strength`` (to see how it shapes short runs);
``--set KEY=VALUE`` (repeatable) sets a key of the behavior's settings by its dotted path, e.g.
``--set hyperparameters.batch_size=128`` or ``--set reward_signals.curiosity.learning_rate=0.001``
(a ``reward_signals.<signal>`` key applies only to the runs that have that signal).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from learn_in_process import learn_in_process

REPO = Path(__file__).resolve().parents[1]
CONFIGS = {
    "extrinsic": REPO / "configs/Pyramids.yaml",
    "curiosity": REPO / "configs/Pyramids.yaml",
    "rnd": REPO / "configs/PyramidsRND.yaml",
}


def _config(
    signal: str,
    steps: int,
    summary: int,
    seed: int,
    area_size: float | None,
    strength: float | None = None,
    overrides: tuple[str, ...] = (),
    rooms: int | None = None,
) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(yaml.safe_load(CONFIGS[signal].read_text()))
    behavior = config["behaviors"]["Pyramids"]
    if signal == "extrinsic":
        behavior["reward_signals"] = {"extrinsic": behavior["reward_signals"]["extrinsic"]}
    elif strength is not None:
        behavior["reward_signals"][signal]["strength"] = strength
    behavior.update(max_steps=steps, summary_freq=summary, checkpoint_interval=steps)
    for override in overrides:
        _set(behavior, override)
    config["env_settings"]["seed"] = seed
    parameters: dict[str, float] = {}
    if area_size is not None:
        parameters["areaSize"] = area_size
    if rooms is not None:
        parameters["rooms"] = rooms
    if parameters:
        config.setdefault("environment_parameters", {}).update(parameters)
    return config


def _set(behavior: dict[str, Any], override: str) -> None:
    """Apply one ``--set dotted.key=value`` (the value parsed as YAML) to ``behavior``."""
    key, sep, value = override.partition("=")
    if not sep:
        raise SystemExit(f"--set {override!r}: expected KEY=VALUE, e.g. hyperparameters.beta=0.005")
    *parents, last = key.split(".")
    node = behavior
    for i, part in enumerate(parents):
        if part not in node and parents[:i] == ["reward_signals"]:
            return  # a signal this run does not have
        node = node.setdefault(part, {})
    node[last] = yaml.safe_load(value)


@dataclass
class Run:
    """One run's numbers."""

    success: float  # success rate over the last window of training
    switch: float  # switch rate (episodes that pressed the switch) over the same window
    reward: float  # mean episode reward over the same window
    success_all: float  # success rate over the whole run
    rate: float  # agent steps per second, end to end


def _mean_after(scalars: list[Any], since: int) -> float:
    """Mean of the summaries written after step ``since`` (each averages its episodes)."""
    values = [s.value for s in scalars if s.step > since]
    return statistics.fmean(values) if values else float("nan")


def _read(events_dir: Path, steps: int, window: float) -> tuple[float, float, float, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(events_dir), size_guidance={"scalars": 0})
    events.Reload()
    tags = events.Tags()["scalars"]
    since = int(steps * (1.0 - window))
    success = events.Scalars("Pyramids/SuccessRate") if "Pyramids/SuccessRate" in tags else []
    switch = events.Scalars("Pyramids/SwitchRate") if "Pyramids/SwitchRate" in tags else []
    rewards = events.Scalars("Environment/Cumulative Reward")
    return (
        _mean_after(success, since),
        _mean_after(switch, since),
        _mean_after(rewards, since),
        _mean_after(success, -1),
    )


def _train(config: dict[str, Any], folder: Path, label: str, window: float) -> Run:
    elapsed = learn_in_process(config, folder, label)
    steps = config["behaviors"]["Pyramids"]["max_steps"]
    success, switch, reward, success_all = _read(folder / label / "Pyramids", steps, window)
    return Run(success, switch, reward, success_all, steps / elapsed)


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300000)
    parser.add_argument("--summary", type=int, default=None, help="default: steps / 20")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--window", type=float, default=0.25, help="last fraction measured")
    parser.add_argument("--area-size", type=float, default=None)
    parser.add_argument(
        "--rooms", type=int, choices=(0, 1), default=None, help="default: the player's (1)"
    )
    parser.add_argument(
        "--strength", type=float, default=None, help="replace the intrinsic signals' strength"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a behavior key by dotted path (repeatable)",
    )
    parser.add_argument(
        "--signals", nargs="+", choices=sorted(CONFIGS), default=["extrinsic", "curiosity", "rnd"]
    )
    args = parser.parse_args()
    summary = args.summary or max(1, args.steps // 20)
    results: dict[str, list[Run]] = {signal: [] for signal in args.signals}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            folder = Path(tmp) / f"seed{seed}"
            folder.mkdir()
            for signal in args.signals:
                config = _config(
                    signal,
                    args.steps,
                    summary,
                    seed,
                    args.area_size,
                    args.strength,
                    tuple(args.set),
                    args.rooms,
                )
                run = _train(config, folder, signal, args.window)
                results[signal].append(run)
                print(
                    f"Pyramids seed {seed} {signal}: success {run.success:.3f} (whole run "
                    f"{run.success_all:.3f}), switch {run.switch:.3f}, reward {run.reward:.3f}, "
                    f"{run.rate:.0f} steps/s",
                    flush=True,
                )
    area = "" if args.area_size is None else f", areaSize {args.area_size}"
    area += "" if args.rooms is None else f", rooms {args.rooms}"
    area += "" if args.strength is None else f", intrinsic strength {args.strength}"
    area += "".join(f", {override}" for override in args.set)
    print(
        f"\nPyramids, {args.steps} agent steps{area}, seeds {args.seeds}: success rate and mean "
        f"episode reward over the last {args.window:.0%} of training"
    )
    base = None
    for signal, runs in results.items():
        success = statistics.fmean(r.success for r in runs)
        each = " ".join(f"{r.success:.3f}" for r in runs)
        switch = statistics.fmean(r.switch for r in runs)
        reward = statistics.fmean(r.reward for r in runs)
        rate = statistics.fmean(r.rate for r in runs)
        line = f"  {signal:10s} success {success:.3f} [{each}]  switch {switch:.3f}"
        line += f"  reward {reward:7.3f}"
        line += f"  {rate:5.0f} steps/s"
        if signal == "extrinsic":
            base = success
        elif base is not None:
            line += f"  x{success / base:.1f} extrinsic" if base > 0 else "  (extrinsic: 0)"
        print(line, flush=True)


if __name__ == "__main__":
    main_bench()
