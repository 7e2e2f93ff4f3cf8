"""Base class of side channels: a UUID plus queued outgoing messages."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage


class SideChannel(ABC):
    """Subclass this to exchange your own data with a matching C# ``SideChannel``.

    Python and C# channels pair up by ``channel_id``. Messages queued with
    :meth:`queue_message_to_send` go out with the next step or reset; messages from the player
    arrive in :meth:`on_message_received`, in the order the player sent them.
    """

    def __init__(self, channel_id: uuid.UUID) -> None:
        self._channel_id = channel_id
        self.message_queue: list[bytes] = []

    @property
    def channel_id(self) -> uuid.UUID:
        return self._channel_id

    def queue_message_to_send(self, msg: OutgoingMessage) -> None:
        self.message_queue.append(bytes(msg.buffer))

    @abstractmethod
    def on_message_received(self, msg: IncomingMessage) -> None:
        """Handle one message the player sent on this channel."""
