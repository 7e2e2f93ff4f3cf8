"""mlagents-learn's command line for ``unity-sb3 learn``, and how it combines with the YAML file.

:func:`add_learn_arguments` declares mlagents-learn 1.1.0's flags with its names, destinations
and defaults (plus the pre-0.17 ``--curriculum`` and ``--sampler`` files). As in mlagents-learn,
only flags the user actually gives override the file: each flag records its destination in
``args.explicit_flags`` when it is parsed, so a flag left at its default never masks a value
from the YAML. :func:`resolve_run_options` then builds the run's :class:`RunOptions`.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cli.config_errors import ConfigError
from cli.legacy_config import LegacyConfigError, upgrade
from cli.training_config import (
    CheckpointSettings,
    RunOptions,
    parse_run_options,
    read_yaml_mapping,
)

logger = logging.getLogger("unity_sb3")

EXPLICIT_DEST = "explicit_flags"

# Where each flag's value goes in the configuration: (section or None for top level, flag).
FLAG_TARGETS: dict[str, tuple[str | None, str]] = {
    "env_path": ("env_settings", "--env"),
    "env_args": ("env_settings", "--env-args"),
    "base_port": ("env_settings", "--base-port"),
    "num_envs": ("env_settings", "--num-envs"),
    "num_areas": ("env_settings", "--num-areas"),
    "timeout_wait": ("env_settings", "--timeout-wait"),
    "seed": ("env_settings", "--seed"),
    "max_lifetime_restarts": ("env_settings", "--max-lifetime-restarts"),
    "restarts_rate_limit_n": ("env_settings", "--restarts-rate-limit-n"),
    "restarts_rate_limit_period_s": ("env_settings", "--restarts-rate-limit-period-s"),
    "ray_address": ("env_settings", "--ray-address"),
    "ray_cpus_per_player": ("env_settings", "--ray-cpus-per-player"),
    "ray_resources": ("env_settings", "--ray-resource"),
    "ray_players_per_host": ("env_settings", "--ray-players-per-host"),
    "width": ("engine_settings", "--width"),
    "height": ("engine_settings", "--height"),
    "quality_level": ("engine_settings", "--quality-level"),
    "time_scale": ("engine_settings", "--time-scale"),
    "target_frame_rate": ("engine_settings", "--target-frame-rate"),
    "capture_frame_rate": ("engine_settings", "--capture-frame-rate"),
    "no_graphics": ("engine_settings", "--no-graphics"),
    "no_graphics_monitor": ("engine_settings", "--no-graphics-monitor"),
    "run_id": ("checkpoint_settings", "--run-id"),
    "initialize_from": ("checkpoint_settings", "--initialize-from"),
    "load_model": ("checkpoint_settings", "--load"),
    "resume": ("checkpoint_settings", "--resume"),
    "force": ("checkpoint_settings", "--force"),
    "train_model": ("checkpoint_settings", "--train"),
    "inference": ("checkpoint_settings", "--inference"),
    "results_dir": ("checkpoint_settings", "--results-dir"),
    "device": ("torch_settings", "--torch-device"),
    "num_threads": ("torch_settings", "--torch-threads"),
    "debug": (None, "--debug"),
}


def _mark_explicit(namespace: argparse.Namespace, *dests: str) -> None:
    seen = frozenset(getattr(namespace, EXPLICIT_DEST, frozenset()))
    setattr(namespace, EXPLICIT_DEST, seen | set(dests))


class _Explicit(argparse.Action):
    """Store the value and remember that the user gave this flag."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, values)
        _mark_explicit(namespace, self.dest)


class _ResourceFlag(_Explicit):
    """``--ray-resource NAME=AMOUNT``, repeatable: collects a ``{name: amount}`` mapping."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        name, sep, amount = str(values).partition("=")
        try:
            number = float(amount)
        except ValueError:
            number = float("nan")
        if not sep or not name or not number > 0:
            parser.error(
                f"{option_string} {values}: expected NAME=AMOUNT with a positive AMOUNT, e.g. "
                f"{option_string} unity_build=1"
            )
        collected = dict(getattr(namespace, self.dest) or {})
        collected[name] = number
        super().__call__(parser, namespace, collected, option_string)


class _ExplicitTrue(_Explicit):
    """A switch (``store_true``) that remembers it was given."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, True, option_string)


class _Load(_ExplicitTrue):
    """The deprecated ``--load``: sets ``load_model`` and resumes, as it was meant to."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        super().__call__(parser, namespace, values, option_string)
        namespace.resume = True
        _mark_explicit(namespace, "resume")


class _Removed(argparse.Action):
    """A flag mlagents-learn removed but still accepts with a warning."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        logger.warning("The command line argument %s was removed; it is ignored.", option_string)


def explicit_flags(args: argparse.Namespace) -> frozenset[str]:
    """Destinations of the flags the user gave (not those left at their defaults)."""
    return frozenset(getattr(args, EXPLICIT_DEST, frozenset()))


def add_learn_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare mlagents-learn 1.1.0's arguments (same names, destinations and defaults)."""
    parser.set_defaults(**{EXPLICIT_DEST: frozenset()})
    parser.add_argument(
        "trainer_config_path",
        nargs="?",
        default=None,
        help="training configuration YAML (any ML-Agents format); without it every behavior "
        "trains with the default settings",
    )
    parser.add_argument(
        "--env",
        dest="env_path",
        default=None,
        action=_Explicit,
        help="Unity player build to train, or builtin:NAME for a built-in stand-in player "
        "(default: connect to the Unity Editor)",
    )
    parser.add_argument(
        "--load", dest="load_model", default=False, action=_Load, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--resume",
        default=False,
        action=_ExplicitTrue,
        help="continue the run --run-id from its last checkpoint",
    )
    parser.add_argument(
        "--deterministic",
        default=False,
        action=_ExplicitTrue,
        help="act deterministically (the distribution's mean or most likely action) for every "
        "behavior",
    )
    parser.add_argument(
        "--force",
        default=False,
        action=_ExplicitTrue,
        help="overwrite the results of an earlier run with the same --run-id",
    )
    parser.add_argument(
        "--run-id",
        default="ppo",
        action=_Explicit,
        help="name of this run: its results go to RESULTS_DIR/RUN_ID (default: ppo)",
    )
    parser.add_argument(
        "--initialize-from",
        metavar="RUN_ID",
        default=None,
        action=_Explicit,
        help="start from the models of an earlier run (same behaviors and observations)",
    )
    parser.add_argument(
        "--seed",
        default=-1,
        type=int,
        action=_Explicit,
        help="random seed of the training code; -1 picks one (default: -1)",
    )
    parser.add_argument(
        "--train", dest="train_model", default=False, action=_ExplicitTrue, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--inference",
        default=False,
        action=_ExplicitTrue,
        help="run the policies without training (with --resume: those of an earlier run)",
    )
    parser.add_argument(
        "--base-port",
        default=5005,
        type=int,
        action=_Explicit,
        help="first port for the players; player i uses BASE_PORT + i (default: 5005)",
    )
    parser.add_argument(
        "--num-envs",
        default=1,
        type=int,
        action=_Explicit,
        help="number of players to run in parallel (default: 1)",
    )
    parser.add_argument(
        "--num-areas",
        default=1,
        type=int,
        action=_Explicit,
        help="number of training areas in each player (default: 1)",
    )
    parser.add_argument("--debug", default=False, action=_ExplicitTrue, help="log debug messages")
    parser.add_argument(
        "--env-args",
        default=None,
        nargs=argparse.REMAINDER,
        action=_Explicit,
        help="everything after this flag is passed to the player's command line",
    )
    parser.add_argument(
        "--max-lifetime-restarts",
        default=10,
        type=int,
        action=_Explicit,
        help="how often a player may crash and be restarted before training stops; -1: no "
        "limit (default: 10)",
    )
    parser.add_argument(
        "--restarts-rate-limit-n",
        default=1,
        type=int,
        action=_Explicit,
        help="how often a player may crash within --restarts-rate-limit-period-s; -1: no limit "
        "(default: 1)",
    )
    parser.add_argument(
        "--restarts-rate-limit-period-s",
        default=60,
        type=int,
        action=_Explicit,
        help="the period of --restarts-rate-limit-n in seconds (default: 60)",
    )
    ray = parser.add_argument_group(
        "Ray cluster", 'players on the nodes of a Ray cluster (pip install "unity-sb3[ray]")'
    )
    ray.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        default=None,
        action=_Explicit,
        help="run the --num-envs players on this Ray cluster: 'auto' (the cluster of this "
        "machine), HEAD:6379, or ray://HEAD:10001; 'local' starts Ray for this run alone "
        "(default: the players run here, without Ray)",
    )
    ray.add_argument(
        "--ray-cpus-per-player",
        metavar="CPUS",
        default=1.0,
        type=float,
        action=_Explicit,
        help="CPUs each player reserves on its Ray node (default: 1)",
    )
    ray.add_argument(
        "--ray-players-per-host",
        metavar="N",
        default=1,
        type=int,
        action=_Explicit,
        help="players sharing one Ray actor (and node): their steps travel in one call, which "
        "cuts the per-step overhead (default: 1)",
    )
    ray.add_argument(
        "--ray-resource",
        dest="ray_resources",
        metavar="NAME=AMOUNT",
        default=None,
        action=_ResourceFlag,
        help="a custom Ray resource each player needs, e.g. unity_build=1 for nodes started "
        "with --resources '{\"unity_build\": 4}'; repeat for several",
    )
    parser.add_argument(
        "--torch", default=False, action=_Removed, help="(removed) PyTorch is always used"
    )
    parser.add_argument(
        "--tensorflow", default=False, action=_Removed, help="(removed) TensorFlow is gone"
    )
    parser.add_argument(
        "--results-dir",
        default="results",
        action=_Explicit,
        help="folder that holds the runs' results (default: results)",
    )
    parser.add_argument(
        "--curriculum",
        metavar="FILE",
        default=None,
        help="pre-0.17 curriculum file, converted into environment_parameters (see "
        "`unity-sb3 upgrade-config`)",
    )
    parser.add_argument(
        "--sampler",
        metavar="FILE",
        default=None,
        help="pre-0.17 parameter-randomization file, converted into environment_parameters",
    )

    engine = parser.add_argument_group("Engine Configuration")
    engine.add_argument(
        "--width",
        default=84,
        type=int,
        action=_Explicit,
        help="player window width in pixels (default: 84)",
    )
    engine.add_argument(
        "--height",
        default=84,
        type=int,
        action=_Explicit,
        help="player window height in pixels (default: 84)",
    )
    engine.add_argument(
        "--quality-level",
        default=5,
        type=int,
        action=_Explicit,
        help="Unity QualitySettings level (default: 5)",
    )
    engine.add_argument(
        "--time-scale",
        default=20,
        type=float,
        action=_Explicit,
        help="Unity Time.timeScale (default: 20)",
    )
    engine.add_argument(
        "--target-frame-rate",
        default=-1,
        type=int,
        action=_Explicit,
        help="Unity Application.targetFrameRate; -1: unlimited (default: -1)",
    )
    engine.add_argument(
        "--capture-frame-rate",
        default=60,
        type=int,
        action=_Explicit,
        help="Unity Time.captureFramerate (default: 60)",
    )
    engine.add_argument(
        "--no-graphics",
        default=False,
        action=_ExplicitTrue,
        help="start players without graphics (only for agents without visual observations)",
    )
    engine.add_argument(
        "--no-graphics-monitor",
        default=False,
        action=_ExplicitTrue,
        help="give graphics to the first player only, for watching; the others run without",
    )
    engine.add_argument(
        "--timeout-wait",
        default=60,
        type=int,
        action=_Explicit,
        help="seconds to wait for a player to connect (default: 60)",
    )

    torch_group = parser.add_argument_group("Torch Configuration")
    torch_group.add_argument(
        "--torch-device",
        dest="device",
        default=None,
        action=_Explicit,
        help='torch device to train on, e.g. "cpu", "cuda", "cuda:0" (default: automatic)',
    )
    torch_group.add_argument(
        "--torch-threads",
        dest="num_threads",
        default=None,
        type=int,
        action=_Explicit,
        help="torch CPU threads (default: half the cores, 1 to 4, as mlagents-learn; "
        "OMP_NUM_THREADS when set)",
    )


def _optional_path(value: str | None) -> Path | None:
    return Path(value) if value else None


def resolve_run_options(args: argparse.Namespace) -> RunOptions:
    """The run's options: the YAML file (any format) with the legacy ``--curriculum`` and
    ``--sampler`` files folded in, then every flag the user gave laid over it.

    ``--deterministic`` applies to every listed behavior and to ``default_settings``; when both
    ``resume`` and ``initialize_from`` end up set, the one given on the command line wins (resume
    when both or neither are), as in mlagents-learn. Raises :class:`ConfigError`.
    """
    config_path = _optional_path(args.trainer_config_path)
    curriculum_path = _optional_path(getattr(args, "curriculum", None))
    sampler_path = _optional_path(getattr(args, "sampler", None))
    data = read_yaml_mapping(config_path) if config_path is not None else {}
    curriculum = read_yaml_mapping(curriculum_path, "Curriculum") if curriculum_path else None
    sampler = read_yaml_mapping(sampler_path, "Sampler") if sampler_path else None
    try:
        upgraded = upgrade(data, curriculum=curriculum, sampler=sampler)
    except LegacyConfigError as err:
        files = [str(p) for p in (config_path, curriculum_path, sampler_path) if p is not None]
        raise ConfigError(f"{' / '.join(files)}: {err}") from None
    if upgraded.is_legacy:
        logger.warning(upgraded.message(config_path, curriculum_path, sampler_path))

    config = upgraded.config
    explicit = explicit_flags(args)
    origins: dict[str, str] = {}
    for dest in sorted(explicit & FLAG_TARGETS.keys()):
        section, flag = FLAG_TARGETS[dest]
        value = getattr(args, dest)
        if section is None:
            config[dest] = value
            origins[dest] = flag
            continue
        current = config.get(section)
        if current is None:
            current = {}
        if isinstance(current, dict):  # anything else is reported by validation
            config[section] = {**current, dest: value}
            origins[f"{section}.{dest}"] = flag
    options = parse_run_options(
        config,
        source=config_path,
        legacy=upgraded.is_legacy,
        origins=origins,
        require_listed=config_path is not None,
    )
    _settle_resume_and_initialize(options.checkpoint_settings, explicit)
    if "deterministic" in explicit:
        settings = list(options.behaviors.values())
        if options.default_settings is not None:
            settings.append(options.default_settings)
        for behavior in settings:
            behavior.network_settings.deterministic = bool(args.deterministic)
    return options


def _settle_resume_and_initialize(checkpoint: CheckpointSettings, explicit: frozenset[str]) -> None:
    if checkpoint.initialize_from is None or not checkpoint.resume:
        return
    both = f"Both resume and initialize_from={checkpoint.initialize_from} are set"
    if "initialize_from" in explicit and "resume" not in explicit:
        logger.warning("%s; initializing from it and not resuming.", both)
        checkpoint.resume = False
    else:
        logger.warning("%s; resuming and ignoring initialize_from.", both)
        checkpoint.initialize_from = None
