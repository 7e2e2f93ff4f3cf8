"""``unity-sb3 export``: a checkpoint of ``unity-sb3 learn`` -> an ``.onnx`` Unity loads.

``learn`` already writes ``<Behavior>.onnx`` and one beside each checkpoint; this command
re-exports any checkpoint (for instance at another opset) from its SB3 zip, its normalisation
statistics and the behavior spec saved with the run.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np

from cli.command import Command
from cli.run_artifacts import RunDirectory, behavior_spec_from_dict
from unity_gym.base_env import BehaviorSpec


class ExportError(Exception):
    """What is missing, and what exists instead."""


def _pick_behavior(run: RunDirectory, requested: str | None) -> str:
    behaviors = run.behaviors()
    if not behaviors:
        raise ExportError(
            f"{run.root} has no checkpoint (no */checkpoint.json): give the folder of a "
            "unity-sb3 learn run, results/<run-id>."
        )
    if requested is None:
        if len(behaviors) > 1:
            raise ExportError(
                f"{run.root} holds several behaviors ({', '.join(behaviors)}); choose one "
                "with --behavior."
            )
        return behaviors[0]
    if requested not in behaviors:
        raise ExportError(
            f"Behavior {requested!r} has no checkpoint in {run.root}; it has: "
            f"{', '.join(behaviors)}."
        )
    return requested


def _checkpoint_files(run: RunDirectory, name: str, step: int | None) -> tuple[Path, Path | None]:
    folder = run.behavior_dir(name)
    if step is None:
        pointer: dict[str, Any] = json.loads((folder / "checkpoint.json").read_text())
        normalizer = pointer.get("normalizer")
        return folder / pointer["model"], folder / normalizer if normalizer else None
    model = run.checkpoint(name, step)
    if not model.exists():
        steps = sorted(
            int(m.group(1))
            for p in folder.glob(f"{name}-*.zip")
            if (m := re.fullmatch(rf"{re.escape(name)}-(\d+)\.zip", p.name))
        )
        raise ExportError(
            f"No checkpoint of {name} at step {step} ({model} does not exist); the run keeps "
            f"steps {', '.join(map(str, steps)) or 'none'}."
        )
    normalizer = folder / f"{name}-{step}.normalizer.npz"
    return model, normalizer if normalizer.exists() else None


def _algorithm(run: RunDirectory, name: str, spec: BehaviorSpec) -> type[Any]:
    """The SB3 class learn used: the run's configuration translated again."""
    from cli.sb3_translation import translate_behavior
    from cli.training_config import load_run_options

    options = load_run_options(run.configuration)
    config_name = re.sub(r"_team\d+$", "", name) if name not in options.behaviors else name
    plan = translate_behavior(name, options.settings_for(config_name), spec, 1)
    return plan.algorithm_class()


def _normalizer(model: Any, path: Path) -> Any:
    """A VecNormalize with the checkpoint's statistics (clip and epsilon as learn uses them)."""
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from cli.behavior_learner import restore_normalizer
    from cli.sb3_translation import NORMALIZED_OBSERVATION_CLIP

    class SpacesOnly(gym.Env[Any, Any]):
        observation_space = model.observation_space
        action_space = model.action_space

    with np.load(path) as data:
        keys = sorted({k.rsplit(".", 1)[0] for k in data.files if "." in k}) or None
    normalizer = VecNormalize(
        DummyVecEnv([SpacesOnly]),
        training=False,
        norm_obs=True,
        norm_reward=False,
        clip_obs=NORMALIZED_OBSERVATION_CLIP,
        norm_obs_keys=keys,
    )
    restore_normalizer(normalizer, path)
    return normalizer


def export_checkpoint(
    run_dir: Path,
    behavior: str | None = None,
    step: int | None = None,
    output: Path | None = None,
    opset: int = 9,
) -> Path:
    """Export one checkpoint of a ``learn`` run; returns the file written."""
    from sb3_ext.onnx_export import export_onnx

    run = RunDirectory(run_dir.parent, run_dir.name)
    name = _pick_behavior(run, behavior)
    spec_file = run.behavior_spec_file(name)
    if not spec_file.exists():
        raise ExportError(
            f"{spec_file} is missing: the run was written by an older unity-sb3; train or "
            "resume it once with this version to record the behavior's spec."
        )
    spec = behavior_spec_from_dict(json.loads(spec_file.read_text()))
    model_path, normalizer_path = _checkpoint_files(run, name, step)
    model = _algorithm(run, name, spec).load(str(model_path), device="cpu")
    normalization = _normalizer(model, normalizer_path) if normalizer_path else None
    target = output or model_path.with_suffix(".onnx")
    return export_onnx(model, spec, target, normalization=normalization, opset=opset)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", type=Path, help="the run's folder, results/<run-id>")
    parser.add_argument("--behavior", help="behavior to export (needed when the run has several)")
    parser.add_argument(
        "--checkpoint", type=int, metavar="STEP", help="checkpoint step (default: the latest)"
    )
    parser.add_argument(
        "-o", "--output", type=Path, help="file to write (default: beside the checkpoint)"
    )
    parser.add_argument(
        "--opset", type=int, default=9, help="ONNX opset, 9 (mlagents-learn's) to 15"
    )


def run(args: argparse.Namespace) -> int:
    from cli.config_errors import ConfigError

    try:
        path = export_checkpoint(
            args.run_dir, args.behavior, args.checkpoint, args.output, args.opset
        )
    except (ExportError, ConfigError, ValueError, FileNotFoundError) as err:
        print(f"unity-sb3 export: {err}", file=sys.stderr)
        return 1
    print(f"Exported {path}")
    return 0


COMMAND = Command(
    name="export",
    help="Export a checkpoint of a learn run as an .onnx model for Unity.",
    add_arguments=add_arguments,
    run=run,
)
