"""Run options -> how the players start: flags, engine settings, environment parameters."""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from cli.training_config import (
    ConstantSampler,
    GaussianSampler,
    RunOptions,
    Sampler,
    UniformSampler,
)
from unity_gym.env_group import WorkerSettings
from unity_gym.launcher import builtin_player_name
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


def environment_parameters(
    options: RunOptions, seed: int | None = None
) -> tuple[dict[str, float | ParameterSampler], list[str]]:
    """What to send each player, and notes (a curriculum runs its first lesson for now)."""
    rng = random.Random(seed)
    values: dict[str, float | ParameterSampler] = {}
    notes: list[str] = []
    for name, setting in (options.environment_parameters or {}).items():
        first, *later = setting.curriculum
        if later:
            notes.append(
                f"environment_parameters.{name}: curriculum lessons do not advance yet; "
                f"training uses its first lesson ({first.name!r}) throughout."
            )
        values[name] = sampler_from_settings(first.value, rng.randrange(2**31))
    return values, notes


def worker_settings(
    options: RunOptions,
    log_folder: Path,
    side_channels: Callable[[int], Sequence[SideChannel]],
    parameters: Mapping[str, float | ParameterSampler],
) -> WorkerSettings:
    """How to start each player, from ``env_settings`` and ``engine_settings``.

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
    )


def player_notes(options: RunOptions) -> list[str]:
    """Notes for engine settings the chosen players cannot honour."""
    env, engine = options.env_settings, options.engine_settings
    notes: list[str] = []
    builtin = env.env_path is not None and builtin_player_name(env.env_path) is not None
    if engine.no_graphics_monitor and builtin and not engine.no_graphics:
        notes.append(
            "engine_settings.no_graphics_monitor (--no-graphics-monitor): built-in players "
            "have no graphics window to keep open; every player runs without one."
        )
    return notes
