"""Environment parameters channel: constants and per-episode samplers set from Python.

Python sends a key with either a float or a sampler description (seed, kind, arguments); the
player samples a fresh value whenever it reads the key, which ML-Agents scenes do at each
episode start.
"""

from __future__ import annotations

import enum
import math
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from unity_gym.exception import UnityCommunicationException, UnitySideChannelException
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel

ENVIRONMENT_PARAMETERS_CHANNEL_ID = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")


class EnvironmentDataTypes(enum.IntEnum):
    FLOAT = 0
    SAMPLER = 1


class SamplerTypes(enum.IntEnum):
    UNIFORM = 0
    GAUSSIAN = 1
    MULTIRANGEUNIFORM = 2


class EnvironmentParametersChannel(SideChannel):
    """Python side: set environment parameters the player reads with ``GetWithDefault``."""

    EnvironmentDataTypes = EnvironmentDataTypes
    SamplerTypes = SamplerTypes

    def __init__(self) -> None:
        super().__init__(ENVIRONMENT_PARAMETERS_CHANNEL_ID)

    def on_message_received(self, msg: IncomingMessage) -> None:
        raise UnityCommunicationException(
            "The EnvironmentParametersChannel received a message from Unity; players never send "
            "on this channel."
        )

    def _sampler_message(self, key: str, seed: int, kind: int) -> OutgoingMessage:
        msg = OutgoingMessage()
        msg.write_string(key)
        msg.write_int32(EnvironmentDataTypes.SAMPLER)
        msg.write_int32(seed)
        msg.write_int32(kind)
        return msg

    def set_float_parameter(self, key: str, value: float) -> None:
        msg = OutgoingMessage()
        msg.write_string(key)
        msg.write_int32(EnvironmentDataTypes.FLOAT)
        msg.write_float32(value)
        self.queue_message_to_send(msg)

    def set_uniform_sampler_parameters(
        self, key: str, min_value: float, max_value: float, seed: int
    ) -> None:
        msg = self._sampler_message(key, seed, SamplerTypes.UNIFORM)
        msg.write_float32(min_value)
        msg.write_float32(max_value)
        self.queue_message_to_send(msg)

    def set_gaussian_sampler_parameters(
        self, key: str, mean: float, st_dev: float, seed: int
    ) -> None:
        msg = self._sampler_message(key, seed, SamplerTypes.GAUSSIAN)
        msg.write_float32(mean)
        msg.write_float32(st_dev)
        self.queue_message_to_send(msg)

    def set_multirangeuniform_sampler_parameters(
        self, key: str, intervals: Sequence[tuple[float, float]], seed: int
    ) -> None:
        for low, high in intervals:
            if low > high:
                raise UnitySideChannelException(
                    f"Interval ({low}, {high}) of parameter {key!r} has min greater than max."
                )
        msg = self._sampler_message(key, seed, SamplerTypes.MULTIRANGEUNIFORM)
        msg.write_float32_list([v for interval in intervals for v in interval])
        self.queue_message_to_send(msg)


@dataclass
class ParameterSampler:
    """Player side: draws values of one parameter (a constant has ``kind`` None)."""

    kind: SamplerTypes | None
    arguments: tuple[float, ...]
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = np.random.default_rng(self.seed)

    def sample(self) -> float:
        if self.kind is None:
            return self.arguments[0]
        if self.kind == SamplerTypes.UNIFORM:
            low, high = self.arguments
            return float(self._rng.uniform(low, high))
        if self.kind == SamplerTypes.GAUSSIAN:
            mean, std = self.arguments
            return float(self._rng.normal(mean, std))
        lows = np.asarray(self.arguments[0::2], dtype=np.float64)
        highs = np.asarray(self.arguments[1::2], dtype=np.float64)
        widths = highs - lows
        total = float(widths.sum())
        if total <= 0 or not math.isfinite(total):
            return float(lows[0]) if len(lows) else 0.0
        point = self._rng.uniform(0.0, total)
        index = int(np.searchsorted(np.cumsum(widths), point, side="right"))
        index = min(index, len(lows) - 1)
        return float(lows[index] + point - (np.cumsum(widths)[index] - widths[index]))


def read_environment_parameter_message(msg: IncomingMessage) -> tuple[str, ParameterSampler]:
    """Player side: decode one message into the key and its sampler."""
    key = msg.read_string()
    data_type = msg.read_int32()
    if data_type == EnvironmentDataTypes.FLOAT:
        return key, ParameterSampler(None, (msg.read_float32(),))
    if data_type != EnvironmentDataTypes.SAMPLER:
        raise UnityCommunicationException(
            f"Environment parameter {key!r} has unknown data type {data_type}."
        )
    seed = msg.read_int32()
    kind = SamplerTypes(msg.read_int32())
    if kind == SamplerTypes.MULTIRANGEUNIFORM:
        return key, ParameterSampler(kind, tuple(msg.read_float32_list()), seed)
    return key, ParameterSampler(kind, (msg.read_float32(), msg.read_float32()), seed)
