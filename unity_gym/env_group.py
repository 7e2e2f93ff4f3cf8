"""Start several players at once and close them together.

Vector adapters run one player process per worker. Each takes a free port of its own unless
``base_port`` or ``worker_id_start`` is given (then ML-Agents' ``base_port + worker_id``).
Players start concurrently, so N workers take about as long to open as one; if any fails, the
others are closed before the error propagates, so no process or port is left behind.
:func:`choose_behavior` picks the behavior an adapter exposes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from unity_gym.base_env import matching_behaviors
from unity_gym.environment import FREE_PORT, UnityEnvironment
from unity_gym.exception import UnityEnvironmentException, UnityException
from unity_gym.ray_players import RayPlayers
from unity_gym.restart_policy import RestartPolicy
from unity_gym.side_channel.engine_configuration_channel import (
    EngineConfig,
    EngineConfigurationChannel,
)
from unity_gym.side_channel.environment_parameters_channel import (
    EnvironmentParametersChannel,
    ParameterSampler,
    SamplerTypes,
)
from unity_gym.side_channel.side_channel import SideChannel

SideChannelFactory = Callable[[int], Sequence[SideChannel]]


@dataclass
class WorkerSettings:
    """How to start each worker's player (same meaning as ``UnityEnvironment``'s arguments)."""

    file_name: str | None
    # Neither given: every player gets a free port. Either given: ML-Agents' ports.
    base_port: int | None = None
    worker_id_start: int | None = None
    seed: int = 0
    no_graphics: bool = True
    # mlagents-learn's --no-graphics-monitor: every worker but the first starts without graphics.
    no_graphics_monitor: bool = False
    timeout_wait: int = 60
    additional_args: list[str] = field(default_factory=list)
    log_folder: str | None = None
    num_areas: int = 1
    host: str = "127.0.0.1"
    # Called with the worker index; returns that worker's side channels (each worker needs its
    # own channel objects).
    side_channels: SideChannelFactory | None = None
    # Sent to every worker before its first reset, as mlagents-learn does: engine settings,
    # and environment parameters as constants or samplers the player draws per episode (on the
    # worker's EnvironmentParametersChannel: one of side_channels', else one added for it).
    # A restarted worker gets the values current then (see PlayerSet.set_environment_parameters).
    engine_config: EngineConfig | None = None
    environment_parameters: Mapping[str, float | ParameterSampler] = field(default_factory=dict)
    # Replace a player that crashes or hangs (timeout_wait) within these limits; None: its
    # failure is raised.
    restart_policy: RestartPolicy | None = None
    # Run each player in an actor on a Ray cluster instead of on this machine.
    ray_players: RayPlayers | None = None

    def channels(self, index: int) -> list[SideChannel]:
        channels = list(self.side_channels(index)) if self.side_channels else []
        if self.engine_config is not None:
            engine = EngineConfigurationChannel()
            engine.set_configuration(self.engine_config)
            channels.append(engine)
        parameters = next(
            (c for c in channels if isinstance(c, EnvironmentParametersChannel)), None
        )
        if parameters is None:
            # Always there, so that values can be changed later (set_environment_parameters).
            parameters = EnvironmentParametersChannel()
            channels.append(parameters)
        for key, value in self.environment_parameters.items():
            send_environment_parameter(parameters, key, value)
        return channels

    def open(self, index: int) -> UnityEnvironment:
        """Start worker ``index``'s player (its log is ``Player-<worker id>.log``), here or,
        with ``ray_players``, on a node of the Ray cluster."""
        free = self.file_name is not None and self.base_port is None
        free = free and self.worker_id_start is None
        arguments: dict[str, Any] = {
            "file_name": self.file_name,
            "worker_id": (self.worker_id_start or 0) + index,
            "base_port": FREE_PORT if free else self.base_port,
            "seed": unity_seed(self.seed + index),
            "no_graphics": self.no_graphics or (self.no_graphics_monitor and index != 0),
            "timeout_wait": self.timeout_wait,
            "additional_args": list(self.additional_args),
            "log_folder": self.log_folder,
            "num_areas": self.num_areas,
            "host": self.host,
        }
        if self.ray_players is not None:
            return self.ray_players.open(arguments, self.channels(index), self.timeout_wait)
        return UnityEnvironment(**arguments, side_channels=self.channels(index))


def unity_seed(seed: int) -> int:
    """A Gymnasium/SB3 seed (any int; SB3 draws them up to 2**32) as Unity's int32 seed:
    seeds already in range stay as they are, others wrap around."""
    return (seed + 2**31) % 2**32 - 2**31


def send_environment_parameter(
    channel: EnvironmentParametersChannel, key: str, value: float | ParameterSampler
) -> None:
    """Queue one constant or sampler on ``channel`` (sent with the next message)."""
    if not isinstance(value, ParameterSampler):
        channel.set_float_parameter(key, float(value))
    elif value.kind is None:
        channel.set_float_parameter(key, value.arguments[0])
    elif value.kind == SamplerTypes.UNIFORM:
        low, high = value.arguments
        channel.set_uniform_sampler_parameters(key, low, high, seed=value.seed)
    elif value.kind == SamplerTypes.GAUSSIAN:
        mean, st_dev = value.arguments
        channel.set_gaussian_sampler_parameters(key, mean, st_dev, seed=value.seed)
    else:
        pairs = list(zip(value.arguments[0::2], value.arguments[1::2], strict=True))
        channel.set_multirangeuniform_sampler_parameters(key, pairs, seed=value.seed)


def open_environments(settings: WorkerSettings, count: int) -> list[UnityEnvironment]:
    """Open ``count`` workers concurrently; all or none."""
    if count < 1:
        raise ValueError(f"n_envs must be at least 1, got {count}.")
    if settings.file_name is None and count > 1:
        raise UnityException(
            "Several workers need a player build or 'builtin:<name>': the Unity Editor is a "
            "single player. Pass file_name, or use n_envs=1."
        )
    if settings.ray_players is not None:
        settings.ray_players.connect()  # from this thread: Ray sets signal handlers
    with ThreadPoolExecutor(max_workers=count) as pool:
        futures = [pool.submit(settings.open, i) for i in range(count)]
    opened: list[UnityEnvironment] = []
    errors: list[BaseException] = []
    for future in futures:
        error = future.exception()
        if error is None:
            opened.append(future.result())
        else:
            errors.append(error)
    if errors:
        close_all(opened)
        raise errors[0]
    return opened


def close_all(envs: Sequence[UnityEnvironment]) -> None:
    """Close every environment, even if closing one of them fails."""
    for env in envs:
        with contextlib.suppress(UnityException):
            env.close()


def choose_behavior(env: UnityEnvironment, behavior_name: str | None) -> str:
    """The behavior to expose (``env`` has been reset): the one given, or the scene's only one.

    ``behavior_name`` is a full name (``3DBall?team=0``) or, when only one behavior has it, a
    name without the team (``3DBall``); the full name is returned.
    """
    names = list(env.behavior_specs)
    if behavior_name is not None:
        matches = matching_behaviors(behavior_name, names)
        if len(matches) != 1:
            problem = "matches several behaviors" if matches else "is not in this scene"
            raise UnityEnvironmentException(
                f"Behavior {behavior_name!r} {problem}; its behaviors are: "
                f"{', '.join(names) or 'none'}."
            )
        return matches[0]
    if len(names) != 1:
        raise UnityEnvironmentException(
            f"This scene has {len(names)} behaviors ({', '.join(names) or 'none'}); pass "
            "behavior_name to choose one (or use the PettingZoo adapters for all of them)."
        )
    return names[0]
