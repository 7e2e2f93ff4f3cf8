"""Environment parameters channel: constants and per-episode samplers set from Python.

Python sends a key with either a float or a sampler description (seed, kind, arguments); the
player samples a fresh value whenever it reads the key, which ML-Agents scenes do at each
episode start. Decoding mirrors ML-Agents' C#
``Runtime/SideChannels/EnvironmentParametersChannel.cs``; the draws mirror its
``Runtime/Sampler.cs`` (see :mod:`unity_gym.side_channel.unity_samplers`).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from unity_gym.exception import UnityCommunicationException, UnitySideChannelException
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.side_channel.unity_samplers import (
    GaussianSampler,
    MultiRangeUniformSampler,
    UniformSampler,
)

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
    """Player side: draws values of one parameter (a constant has ``kind`` None).

    Samplers draw exactly as Unity's ``SamplerFactory`` does (see
    :mod:`unity_gym.side_channel.unity_samplers`): each instance starts its sequence afresh
    from ``seed``, like the sampler Unity builds for every message, so re-sending a parameter
    restarts its draws. Arguments are taken as float32, as they travel on the wire.
    """

    kind: SamplerTypes | None
    arguments: tuple[float, ...]
    seed: int = 0
    _draw: Callable[[], float] | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind is None:
            return
        if self.kind == SamplerTypes.UNIFORM:
            low, high = self.arguments
            self._draw = UniformSampler(low, high, self.seed)
        elif self.kind == SamplerTypes.GAUSSIAN:
            mean, st_dev = self.arguments
            self._draw = GaussianSampler(mean, st_dev, self.seed)
        else:
            self._draw = MultiRangeUniformSampler(self.arguments, self.seed)

    def sample(self) -> float:
        """The next value: the constant itself, or the sampler's next draw."""
        if self._draw is None:
            return self.arguments[0]
        return self._draw()


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
