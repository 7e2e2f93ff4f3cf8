"""Stats channel: the player reports named values (``Academy.Instance.StatsRecorder``)."""

from __future__ import annotations

import enum
import uuid
from collections import defaultdict
from collections.abc import Mapping

from unity_gym.exception import UnitySideChannelException
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel

STATS_CHANNEL_ID = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")


class StatsAggregationMethod(enum.Enum):
    """How values of one key within a summary period combine."""

    AVERAGE = 0
    MOST_RECENT = 1
    SUM = 2
    HISTOGRAM = 3


StatList = list[tuple[float, StatsAggregationMethod]]
EnvironmentStats = Mapping[str, StatList]


def encode_stat(key: str, value: float, method: StatsAggregationMethod) -> OutgoingMessage:
    """Player side: one stat message."""
    msg = OutgoingMessage()
    msg.write_string(key)
    msg.write_float32(value)
    msg.write_int32(method.value)
    return msg


class StatsSideChannel(SideChannel):
    """Python side: gathers stats until :meth:`get_and_reset_stats`."""

    def __init__(self) -> None:
        super().__init__(STATS_CHANNEL_ID)
        self.stats: defaultdict[str, StatList] = defaultdict(list)

    def on_message_received(self, msg: IncomingMessage) -> None:
        key = msg.read_string()
        value = msg.read_float32()
        code = msg.read_int32()
        try:
            method = StatsAggregationMethod(code)
        except ValueError:
            raise UnitySideChannelException(
                f"The player sent stat {key!r} with the unknown aggregation method {code} "
                f"(known: {', '.join(f'{m.value} {m.name}' for m in StatsAggregationMethod)}); "
                "the player's ML-Agents package does not match this one."
            ) from None
        self.stats[key].append((value, method))

    def get_and_reset_stats(self) -> EnvironmentStats:
        stats, self.stats = self.stats, defaultdict(list)
        return stats
