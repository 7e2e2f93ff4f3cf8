"""Float properties channel: a shared key -> float dictionary, writable from both sides."""

from __future__ import annotations

import uuid

from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel

FLOAT_PROPERTIES_CHANNEL_ID = uuid.UUID("60ccf7d0-4f7e-11ea-b238-784f4387d1f7")


def encode_float_property(key: str, value: float) -> OutgoingMessage:
    msg = OutgoingMessage()
    msg.write_string(key)
    msg.write_float32(value)
    return msg


class FloatPropertiesChannel(SideChannel):
    """Keeps the latest value of each key, whichever side set it."""

    def __init__(self, channel_id: uuid.UUID | None = None) -> None:
        super().__init__(channel_id or FLOAT_PROPERTIES_CHANNEL_ID)
        self._float_properties: dict[str, float] = {}

    def on_message_received(self, msg: IncomingMessage) -> None:
        key = msg.read_string()
        self._float_properties[key] = msg.read_float32()

    def set_property(self, key: str, value: float) -> None:
        self._float_properties[key] = value
        self.queue_message_to_send(encode_float_property(key, value))

    def get_property(self, key: str) -> float | None:
        return self._float_properties.get(key)

    def list_properties(self) -> list[str]:
        return list(self._float_properties)

    def get_property_dict_copy(self) -> dict[str, float]:
        return dict(self._float_properties)
