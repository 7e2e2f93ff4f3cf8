"""Self-play on 2 cores: built-in Tennis (one model, both teams) and StrikersVsGoalie (one model
per side), trained by ``unity-sb3 learn`` and then played against other policies.

    python bench/self_play.py --steps 300000 --games 200 --seeds 0

Per seed:

- Tennis: ``configs/Tennis.yaml`` (``self_play``) for ``--steps`` agent steps. Prints the
  ``Self-play/ELO`` summaries over the run, then ``unity-sb3 match`` results (``play_match``)
  of the final checkpoint as ``Tennis?team=0`` against ``random`` and against the run's first
  checkpoint (its early snapshot), ``--games`` games each, sampled actions as in training;
  for reference the built-in heuristic against random, and the final policy's most likely
  actions against random. Goals: ≥ 90% wins against random and ≥ 70% against the early
  snapshot.
- StrikersVsGoalie: ``configs/StrikersVsGoalie.yaml`` for ``--asymmetric-steps`` steps per
  side. Prints the goal rate (the striker's wins) of the trained striker against a random
  goalie and of a random striker against the trained goalie, next to random against random.
  Goal: the trained striker scores clearly more than a random one, and the trained goalie
  lets in clearly fewer.

``--skip tennis`` or ``--skip asymmetric`` leaves one part out; ``--deterministic`` plays the
models' most likely actions instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

import yaml
from learn_in_process import learn_in_process

from cli.match_command import MatchResult, play_match

REPO = Path(__file__).resolve().parents[1]


def _config(name: str, steps: int, seed: int) -> dict[str, Any]:
    config: dict[str, Any] = copy.deepcopy(
        yaml.safe_load((REPO / "configs" / f"{name}.yaml").read_text())
    )
    for behavior in config["behaviors"].values():
        behavior["max_steps"] = steps
    if "default_settings" in config:
        config["default_settings"]["max_steps"] = steps
    config["env_settings"]["seed"] = seed
    return config


def _checkpoints(run: Path, behavior: str) -> list[Path]:
    """The run's checkpoints of ``behavior`` (with normaliser files beside), oldest first."""
    status = json.loads((run / "run_logs/training_status.json").read_text())
    names = [Path(c["file_path"]).name for c in status[behavior]["checkpoints"]]
    folder = run / behavior
    return [folder / name.replace(".onnx", ".zip") for name in names if behavior + "-" in name]


def _elo_summaries(run: Path, behavior: str) -> list[tuple[int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run / behavior), size_guidance={"scalars": 0})
    events.Reload()
    if "Self-play/ELO" not in events.Tags()["scalars"]:
        return []
    return [(s.step, s.value) for s in events.Scalars("Self-play/ELO")]


def _match(env: str, policies: dict[str, str], games: int, seed: int, det: bool) -> MatchResult:
    return play_match(env, policies, games, seed=seed, num_areas=16, deterministic=det)


def _line(label: str, result: MatchResult) -> str:
    return (
        f"  {label:40s} {result.wins:4d} W {result.draws:4d} D {result.losses:4d} L  "
        f"win rate {result.win_rate:.3f}"
    )


def tennis(steps: int, games: int, seed: int, folder: Path, det: bool) -> dict[str, float]:
    label = f"tennis{seed}"
    elapsed = learn_in_process(_config("Tennis", steps, seed), folder, label)
    run = folder / label
    elo = _elo_summaries(run, "Tennis")
    checkpoints = _checkpoints(run, "Tennis")
    final, early = str(checkpoints[-1]), str(checkpoints[0])
    print(f"\nTennis seed {seed}: {steps} steps in {elapsed:.0f} s ({steps / elapsed:.0f} steps/s)")
    quarter = max(1, len(elo) // 4)
    shown = ", ".join(f"{s}: {v:.1f}" for s, v in elo[::quarter] + elo[-1:])
    print(f"  Self-play/ELO (step: value): {shown}")
    me = "Tennis?team=0"
    results = {
        f"final ({Path(final).name}) vs random": _match(
            "builtin:Tennis", {me: final, "Tennis?team=1": "random"}, games, seed, det
        ),
        f"final vs early ({Path(early).name})": _match(
            "builtin:Tennis", {me: final, "Tennis?team=1": early}, games, seed, det
        ),
        "heuristic vs random": _match(
            "builtin:Tennis", {me: "heuristic", "Tennis?team=1": "random"}, games, seed, det
        ),
    }
    if not det:  # the trained policy's most likely actions too (Unity's deterministic inference)
        results["final vs random, greedy actions"] = _match(
            "builtin:Tennis", {me: final, "Tennis?team=1": "random"}, games, seed, True
        )
    for label_, result in results.items():
        print(_line(label_, result), flush=True)
    values = list(results.values())
    return {"vs_random": values[0].win_rate, "vs_early": values[1].win_rate}


def asymmetric(steps: int, games: int, seed: int, folder: Path, det: bool) -> dict[str, float]:
    label = f"strikers{seed}"
    elapsed = learn_in_process(_config("StrikersVsGoalie", steps, seed), folder, label)
    run = folder / label
    striker = str(_checkpoints(run, "Striker")[-1])
    goalie = str(_checkpoints(run, "Goalie")[-1])
    print(f"\nStrikersVsGoalie seed {seed}: {steps} steps per side in {elapsed:.0f} s")
    for side in ("Striker", "Goalie"):
        elo = _elo_summaries(run, side)
        if elo:
            print(f"  {side} Self-play/ELO: first {elo[0][1]:.1f}, last {elo[-1][1]:.1f}")
    env = "builtin:StrikersVsGoalie"
    results = {
        "trained striker vs random goalie": _match(
            env, {"Striker": striker, "Goalie": "random"}, games, seed, det
        ),
        "random striker vs random goalie": _match(
            env, {"Striker": "random", "Goalie": "random"}, games, seed, det
        ),
        "random striker vs trained goalie": _match(
            env, {"Striker": "random", "Goalie": goalie}, games, seed, det
        ),
    }
    print("  (the striker's wins are goals; draws are games that ran to the step limit)")
    for label_, result in results.items():
        print(_line(label_, result), flush=True)
    values = list(results.values())
    return {
        "trained_striker": values[0].win_rate,
        "random_striker": values[1].win_rate,
        "vs_trained_goalie": values[2].win_rate,
    }


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=300000, help="Tennis agent steps")
    parser.add_argument("--asymmetric-steps", type=int, default=400000)
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--skip", choices=("tennis", "asymmetric"), default=None)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--keep", type=Path, default=None, help="keep the runs in this folder")
    args = parser.parse_args()
    tennis_results: list[dict[str, float]] = []
    asym_results: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        for seed in args.seeds:
            if args.skip != "tennis":
                tennis_results.append(
                    tennis(args.steps, args.games, seed, folder, args.deterministic)
                )
            if args.skip != "asymmetric":
                asym_results.append(
                    asymmetric(args.asymmetric_steps, args.games, seed, folder, args.deterministic)
                )
    print(f"\nSummary over seeds {args.seeds}, {args.games} games per match:")
    if tennis_results:
        vs_random = statistics.fmean(r["vs_random"] for r in tennis_results)
        vs_early = statistics.fmean(r["vs_early"] for r in tennis_results)
        print(
            f"  Tennis final policy: {vs_random:.3f} of games won against random (goal 0.90), "
            f"{vs_early:.3f} against its early snapshot (goal 0.70)"
        )
    if asym_results:
        for key, text in (
            ("trained_striker", "trained striker vs random goalie"),
            ("random_striker", "random striker vs random goalie"),
            ("vs_trained_goalie", "random striker vs trained goalie"),
        ):
            print(f"  goal rate, {text}: {statistics.fmean(r[key] for r in asym_results):.3f}")


if __name__ == "__main__":
    main_bench()
