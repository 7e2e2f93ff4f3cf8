"""Side channels: non-RL data exchanged with the player alongside every step."""

from unity_gym.side_channel.engine_configuration_channel import (
    EngineConfig,
    EngineConfigurationChannel,
)
from unity_gym.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from unity_gym.side_channel.float_properties_channel import FloatPropertiesChannel
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.raw_bytes_channel import RawBytesChannel
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.side_channel.side_channel_manager import SideChannelManager
from unity_gym.side_channel.stats_side_channel import StatsAggregationMethod, StatsSideChannel
from unity_gym.side_channel.training_analytics_side_channel import (
    DefaultTrainingAnalyticsSideChannel,
)

__all__ = [
    "DefaultTrainingAnalyticsSideChannel",
    "EngineConfig",
    "EngineConfigurationChannel",
    "EnvironmentParametersChannel",
    "FloatPropertiesChannel",
    "IncomingMessage",
    "OutgoingMessage",
    "RawBytesChannel",
    "SideChannel",
    "SideChannelManager",
    "StatsAggregationMethod",
    "StatsSideChannel",
]
