"""Run options -> how the players start: flags, engine settings, environment parameters."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cli.config_errors import ConfigError
from cli.training_config import (
    RAY_KEYS,
    ConstantSampler,
    GaussianSampler,
    RunOptions,
    Sampler,
    UniformSampler,
)
from sb3_ext.curriculum import CompletionCriteria, Curriculum, Lesson
from unity_gym.env_group import WorkerSettings
from unity_gym.launcher import builtin_player_name
from unity_gym.ray_players import RayPlayers
from unity_gym.restart_policy import RestartPolicy
from unity_gym.side_channel.engine_configuration_channel import EngineConfig
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler, SamplerTypes
from unity_gym.side_channel.side_channel import SideChannel


def sampler_from_settings(sampler: Sampler, seed: int) -> float | ParameterSampler:
    """A constant, or a sampler the player draws from at each episode (ML-Agents' kinds).

    ``seed`` is used unless the sampler sets its own (``sampler_parameters.seed`` other than -1).
    """
    if isinstance(sampler, ConstantSampler):
        return sampler.sampler_parameters.value
    parameters = sampler.sampler_parameters
    if parameters.seed != -1:
        seed = parameters.seed
    arguments: tuple[float, ...]
    if isinstance(sampler, UniformSampler):
        kind = SamplerTypes.UNIFORM
        arguments = (sampler.sampler_parameters.min_value, sampler.sampler_parameters.max_value)
    elif isinstance(sampler, GaussianSampler):
        kind = SamplerTypes.GAUSSIAN
        arguments = (sampler.sampler_parameters.mean, sampler.sampler_parameters.st_dev)
    else:
        kind = SamplerTypes.MULTIRANGEUNIFORM
        arguments = tuple(v for pair in sampler.sampler_parameters.intervals for v in pair)
    return ParameterSampler(kind, arguments, seed)


def run_seed(options: RunOptions) -> int:
    """The seed samplers without their own derive theirs from: ``--seed``, or, as in
    mlagents-learn, a random number below 10000 when it is -1."""
    seed = int(options.env_settings.seed)
    return seed if seed != -1 else random.randrange(10000)


def curriculum_from_options(options: RunOptions, seed: int) -> tuple[Curriculum, list[str]]:
    """Every environment parameter as lessons (a constant or sampler is one lesson), and notes.

    A sampler whose ``seed`` is -1 gets ``seed + offset``, the offset counting such lessons
    over all parameters in the file's order (mlagents-learn's rule), so every player draws
    the same sequence. A last lesson's ``completion_criteria`` are ignored, with a note.
    """
    lessons: dict[str, list[Lesson]] = {}
    notes: list[str] = []
    offset = 0
    for name, setting in (options.environment_parameters or {}).items():
        chain: list[Lesson] = []
        for index, lesson in enumerate(setting.curriculum):
            own_seed = lesson.value.sampler_parameters.seed
            if own_seed == -1:
                own_seed, offset = seed + offset, offset + 1
            criteria = lesson.completion_criteria
            if criteria is not None and criteria.measure == "Elo":
                raise ConfigError(
                    f"environment_parameters.{name}.curriculum[{index}].completion_criteria."
                    "measure: 'Elo' is named in ML-Agents' documentation, but its trainer "
                    "has no such measure (mlagents-learn rejects it too). Use 'reward' (mean "
                    "episode reward over threshold) or 'progress' (share of max_steps)."
                )
            if criteria is not None and index == len(setting.curriculum) - 1:
                if len(setting.curriculum) > 1:
                    notes.append(
                        f"environment_parameters.{name}.curriculum[{index}].completion_criteria"
                        f" is ignored: {lesson.name!r} is the last lesson."
                    )
                criteria = None
            chain.append(
                Lesson(
                    name=lesson.name,
                    value=sampler_from_settings(lesson.value, own_seed),
                    completion_criteria=None
                    if criteria is None
                    else CompletionCriteria(**criteria.model_dump()),
                )
            )
        lessons[name] = chain
    return Curriculum(lessons), notes


def worker_settings(
    options: RunOptions,
    log_folder: Path,
    side_channels: Callable[[int], Sequence[SideChannel]],
    parameters: Mapping[str, float | ParameterSampler],
) -> WorkerSettings:
    """How to start each player, from ``env_settings`` and ``engine_settings``: on this
    machine, or on the nodes of a Ray cluster (:func:`ray_players`).

    Ports are mlagents-learn's (``base_port + worker``) when ``base_port`` / ``--base-port`` is
    given, else each player takes a free port, so runs never collide. A player that crashes or
    hangs for ``timeout_wait`` seconds is restarted within mlagents-learn's three restart
    limits. ``no_graphics_monitor``: the first player keeps its window, every other one starts
    with ``-nographics -batchmode``.
    """
    env, engine = options.env_settings, options.engine_settings
    explicit_port = env.env_path is not None and "base_port" in env.model_fields_set
    return WorkerSettings(
        file_name=env.env_path,
        # Without a build, Python waits for the Editor on its own port (5004).
        base_port=env.base_port if explicit_port else None,
        seed=env.seed if env.seed != -1 else random.randrange(2**31),
        no_graphics=engine.no_graphics,
        no_graphics_monitor=engine.no_graphics_monitor,
        timeout_wait=env.timeout_wait,
        additional_args=list(env.env_args or []),
        log_folder=str(log_folder),
        num_areas=env.num_areas,
        side_channels=side_channels,
        engine_config=EngineConfig(
            width=engine.width,
            height=engine.height,
            quality_level=engine.quality_level,
            time_scale=engine.time_scale,
            target_frame_rate=engine.target_frame_rate,
            capture_frame_rate=engine.capture_frame_rate,
        ),
        environment_parameters=dict(parameters),
        restart_policy=RestartPolicy(
            max_lifetime_restarts=env.max_lifetime_restarts,
            restarts_rate_limit_n=env.restarts_rate_limit_n,
            restarts_rate_limit_period_s=env.restarts_rate_limit_period_s,
        ),
        ray_players=ray_players(options),
    )


def ray_players(options: RunOptions) -> RayPlayers | None:
    """Where the players run on a Ray cluster (``ray_address`` / ``--ray-address``), or None
    for players on this machine ("local": a Ray instance started for this run)."""
    env = options.env_settings
    if env.ray_address is None:
        return None
    return RayPlayers(
        address=None if env.ray_address == "local" else env.ray_address,
        cpus_per_player=env.ray_cpus_per_player,
        resources=dict(env.ray_resources or {}),
        players_per_host=env.ray_players_per_host,
    )


def player_notes(options: RunOptions) -> list[str]:
    """Notes for engine settings the chosen players cannot honour."""
    env, engine = options.env_settings, options.engine_settings
    notes: list[str] = []
    unused_ray = sorted(set(RAY_KEYS[1:]) & env.model_fields_set) if not env.ray_address else []
    if unused_ray:
        notes.append(
            f"env_settings.{', '.join(unused_ray)}: ignored, since the players run on this "
            "machine; set env_settings.ray_address (--ray-address) to run them on a Ray cluster."
        )
    builtin = env.env_path is not None and builtin_player_name(env.env_path) is not None
    if engine.no_graphics_monitor and builtin and not engine.no_graphics:
        notes.append(
            "engine_settings.no_graphics_monitor (--no-graphics-monitor): built-in players "
            "have no graphics window to keep open; every player runs without one."
        )
    return notes
