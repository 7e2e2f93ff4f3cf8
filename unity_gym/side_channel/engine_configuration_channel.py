"""Engine configuration channel: screen size, quality, time scale and frame rates for the player."""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, replace

from unity_gym.exception import UnityCommunicationException, UnitySideChannelException
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel

ENGINE_CONFIGURATION_CHANNEL_ID = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")


class ConfigurationType(enum.IntEnum):
    SCREEN_RESOLUTION = 0
    QUALITY_LEVEL = 1
    TIME_SCALE = 2
    TARGET_FRAME_RATE = 3
    CAPTURE_FRAME_RATE = 4


@dataclass(frozen=True)
class EngineConfig:
    """Engine settings; None leaves the player's current value alone."""

    width: int | None = None
    height: int | None = None
    quality_level: int | None = None
    time_scale: float | None = None
    target_frame_rate: int | None = None
    capture_frame_rate: int | None = None

    @staticmethod
    def default_config() -> EngineConfig:
        """What mlagents-learn sends when no flag overrides it."""
        return EngineConfig(80, 80, 1, 20.0, -1, 60)


class EngineConfigurationChannel(SideChannel):
    """Python side: queue engine settings; the player applies them at the next exchange."""

    ConfigurationType = ConfigurationType

    def __init__(self) -> None:
        super().__init__(ENGINE_CONFIGURATION_CHANNEL_ID)

    def on_message_received(self, msg: IncomingMessage) -> None:
        raise UnityCommunicationException(
            "The EngineConfigurationChannel received a message from Unity; players never send "
            "on this channel."
        )

    def set_configuration_parameters(
        self,
        width: int | None = None,
        height: int | None = None,
        quality_level: int | None = None,
        time_scale: float | None = None,
        target_frame_rate: int | None = None,
        capture_frame_rate: int | None = None,
    ) -> None:
        if (width is None) != (height is None):
            raise UnitySideChannelException(
                "You cannot set the width/height of the screen resolution without also setting "
                "the height/width."
            )
        if width is not None and height is not None:
            msg = OutgoingMessage()
            msg.write_int32(ConfigurationType.SCREEN_RESOLUTION)
            msg.write_int32(width)
            msg.write_int32(height)
            self.queue_message_to_send(msg)
        for kind, value in (
            (ConfigurationType.QUALITY_LEVEL, quality_level),
            (ConfigurationType.TIME_SCALE, time_scale),
            (ConfigurationType.TARGET_FRAME_RATE, target_frame_rate),
            (ConfigurationType.CAPTURE_FRAME_RATE, capture_frame_rate),
        ):
            if value is None:
                continue
            msg = OutgoingMessage()
            msg.write_int32(kind)
            if kind == ConfigurationType.TIME_SCALE:
                msg.write_float32(value)
            else:
                msg.write_int32(int(value))
            self.queue_message_to_send(msg)

    def set_configuration(self, config: EngineConfig) -> None:
        self.set_configuration_parameters(
            config.width,
            config.height,
            config.quality_level,
            config.time_scale,
            config.target_frame_rate,
            config.capture_frame_rate,
        )


def apply_engine_configuration_message(config: EngineConfig, msg: IncomingMessage) -> EngineConfig:
    """Player side: the settings after applying one received message."""
    kind = msg.read_int32()
    if kind == ConfigurationType.SCREEN_RESOLUTION:
        return replace(config, width=msg.read_int32(), height=msg.read_int32())
    if kind == ConfigurationType.QUALITY_LEVEL:
        return replace(config, quality_level=msg.read_int32())
    if kind == ConfigurationType.TIME_SCALE:
        return replace(config, time_scale=msg.read_float32())
    if kind == ConfigurationType.TARGET_FRAME_RATE:
        return replace(config, target_frame_rate=msg.read_int32())
    if kind == ConfigurationType.CAPTURE_FRAME_RATE:
        return replace(config, capture_frame_rate=msg.read_int32())
    raise UnityCommunicationException(f"Unknown engine configuration type {kind}.")
