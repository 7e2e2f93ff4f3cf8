"""The player's end of the side channels: engine settings, environment parameters, stats.

Decoding and framing come from :mod:`unity_gym.side_channel`; this module only keeps the
state a player derives from the messages and queues the stats it reports back.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable

import numpy as np

from unity_gym.exception import UnityException
from unity_gym.side_channel.engine_configuration_channel import (
    ENGINE_CONFIGURATION_CHANNEL_ID,
    EngineConfig,
    apply_engine_configuration_message,
)
from unity_gym.side_channel.environment_parameters_channel import (
    ENVIRONMENT_PARAMETERS_CHANNEL_ID,
    ParameterSampler,
    read_environment_parameter_message,
)
from unity_gym.side_channel.messages import IncomingMessage
from unity_gym.side_channel.side_channel_manager import (
    pack_side_channel_messages,
    unpack_side_channel_messages,
)
from unity_gym.side_channel.stats_side_channel import (
    STATS_CHANNEL_ID,
    StatsAggregationMethod,
    encode_stat,
)
from unity_gym.side_channel.training_analytics_side_channel import TRAINING_ANALYTICS_CHANNEL_ID

logger = logging.getLogger(__name__)


class EnvironmentParameters:
    """Key -> sampler, as set from Python; like Unity's ``EnvironmentParameters``."""

    def __init__(self) -> None:
        self._samplers: dict[str, ParameterSampler] = {}
        self._callbacks: dict[str, Callable[[float], None]] = {}

    def set(self, key: str, sampler: ParameterSampler) -> None:
        """Apply one message: store ``sampler``; a constant also calls ``key``'s callback.

        As in Unity's ``EnvironmentParametersChannel``, the value is stored first and only
        FLOAT (constant) messages invoke the callback; samplers never do.
        """
        self._samplers[key] = sampler
        callback = self._callbacks.get(key)
        if callback is not None and sampler.kind is None:
            callback(sampler.sample())

    def register_callback(self, key: str, callback: Callable[[float], None]) -> None:
        """Call ``callback(value)`` whenever a constant for ``key`` arrives (Unity's
        ``RegisterCallback``); replaces any callback already registered for ``key``."""
        self._callbacks[key] = callback

    def keys(self) -> list[str]:
        return list(self._samplers)

    def __contains__(self, key: object) -> bool:
        return key in self._samplers

    def get(self, key: str, default: float) -> float:
        """A fresh value of ``key`` (samplers draw anew each call), or ``default`` if unset."""
        sampler = self._samplers.get(key)
        return default if sampler is None else sampler.sample()

    def sample(self, key: str, default: float, count: int) -> np.ndarray:
        """``count`` values of ``key`` (one per agent starting an episode) as float64."""
        sampler = self._samplers.get(key)
        if sampler is None:
            return np.full(count, default, dtype=np.float64)
        return np.fromiter((sampler.sample() for _ in range(count)), np.float64, count)


class StatsRecorder:
    """Stats recorded during simulation, sent to Python with the next output."""

    def __init__(self) -> None:
        self._pending: list[bytes] = []

    def add(
        self,
        key: str,
        value: float,
        method: StatsAggregationMethod = StatsAggregationMethod.AVERAGE,
    ) -> None:
        self._pending.append(bytes(encode_stat(key, value, method).buffer))

    def drain(self) -> list[bytes]:
        pending, self._pending = self._pending, []
        return pending


class PlayerChannels:
    """Applies incoming side-channel data and produces the outgoing bytes of each output."""

    def __init__(self) -> None:
        self.engine = EngineConfig()
        self.parameters = EnvironmentParameters()
        self.stats = StatsRecorder()
        self._ignored: set[uuid.UUID] = {TRAINING_ANALYTICS_CHANNEL_ID}
        self._reported: set[uuid.UUID] = set()

    def receive(self, data: bytes) -> None:
        try:
            messages = unpack_side_channel_messages(data)
        except UnityException as err:
            logger.error("Dropped side-channel data that could not be unframed: %s", err)
            return
        for channel_id, payload in messages:
            try:
                self._receive_one(channel_id, IncomingMessage(payload))
            except (UnityException, ValueError) as err:
                logger.error("Dropped a malformed message on side channel %s: %s", channel_id, err)

    def _receive_one(self, channel_id: uuid.UUID, msg: IncomingMessage) -> None:
        if channel_id == ENGINE_CONFIGURATION_CHANNEL_ID:
            self.engine = apply_engine_configuration_message(self.engine, msg)
            logger.info("Engine configuration: %s", self.engine)
        elif channel_id == ENVIRONMENT_PARAMETERS_CHANNEL_ID:
            key, sampler = read_environment_parameter_message(msg)
            self.parameters.set(key, sampler)
            logger.info("Environment parameter %r: %s %s", key, sampler.kind, sampler.arguments)
        elif channel_id not in self._ignored and channel_id not in self._reported:
            self._reported.add(channel_id)
            logger.warning("Ignoring messages on unknown side channel %s.", channel_id)

    def outgoing(self) -> bytes:
        stats = self.stats.drain()
        if not stats:
            return b""
        return pack_side_channel_messages((STATS_CHANNEL_ID, payload) for payload in stats)
