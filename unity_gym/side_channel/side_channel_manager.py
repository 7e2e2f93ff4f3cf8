"""Framing of all side-channel traffic into the ``side_channel`` bytes of an exchange.

Each message is the channel's 16-byte UUID in the byte order C#'s ``Guid.ToByteArray`` uses
(Python's ``UUID.bytes_le``), an int32 little-endian payload length, then the payload.
"""

from __future__ import annotations

import logging
import struct
import uuid
from collections.abc import Iterable

from unity_gym.exception import UnityCommunicationException, UnityEnvironmentException
from unity_gym.side_channel.messages import IncomingMessage
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.side_channel.stats_side_channel import STATS_CHANNEL_ID

logger = logging.getLogger(__name__)
_LENGTH = struct.Struct("<i")


def pack_side_channel_messages(messages: Iterable[tuple[uuid.UUID, bytes]]) -> bytes:
    """Frame ``(channel_id, payload)`` pairs into one byte string."""
    out = bytearray()
    for channel_id, payload in messages:
        out += channel_id.bytes_le
        out += _LENGTH.pack(len(payload))
        out += payload
    return bytes(out)


def unpack_side_channel_messages(data: bytes) -> list[tuple[uuid.UUID, bytes]]:
    """Split framed side-channel bytes into ``(channel_id, payload)`` pairs."""
    messages = []
    offset = 0
    view = memoryview(data)
    while offset < len(data):
        if offset + 20 > len(data):
            raise UnityCommunicationException(
                f"Side-channel data ends inside a message header at byte {offset} of "
                f"{len(data)}; the player and this package disagree on the side-channel format."
            )
        channel_id = uuid.UUID(bytes_le=bytes(view[offset : offset + 16]))
        (length,) = _LENGTH.unpack_from(data, offset + 16)
        start = offset + 20
        if length < 0 or start + length > len(data):
            raise UnityCommunicationException(
                f"Side-channel message for channel {channel_id} claims {length} bytes but only "
                f"{len(data) - start} remain; the side-channel data is corrupted."
            )
        messages.append((channel_id, bytes(view[start : start + length])))
        offset = start + length
    return messages


class SideChannelManager:
    """Routes incoming messages to registered channels and gathers their outgoing ones."""

    def __init__(self, side_channels: Iterable[SideChannel] | None = None) -> None:
        self._channels: dict[uuid.UUID, SideChannel] = {}
        for channel in side_channels or ():
            if channel.channel_id in self._channels:
                raise UnityEnvironmentException(
                    f"There cannot be two side channels with the same channel id "
                    f"{channel.channel_id}."
                )
            self._channels[channel.channel_id] = channel
        self._warned: set[uuid.UUID] = set()

    @property
    def channels(self) -> dict[uuid.UUID, SideChannel]:
        return self._channels

    def process_side_channel_message(self, data: bytes) -> None:
        if not data:
            return
        for channel_id, payload in unpack_side_channel_messages(data):
            channel = self._channels.get(channel_id)
            if channel is not None:
                channel.on_message_received(IncomingMessage(payload))
            elif channel_id not in self._warned:
                self._warned.add(channel_id)
                # Every ML-Agents scene sends stats; dropping them is normal without a reader.
                log = logger.debug if channel_id == STATS_CHANNEL_ID else logger.warning
                log("Unknown side channel data received. Channel type: %s.", channel_id)

    def generate_side_channel_messages(self) -> bytes:
        pending: list[tuple[uuid.UUID, bytes]] = []
        for channel_id, channel in self._channels.items():
            if channel.message_queue:
                pending.extend((channel_id, m) for m in channel.message_queue)
                channel.message_queue = []
        return pack_side_channel_messages(pending) if pending else b""
