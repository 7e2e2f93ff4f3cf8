"""Training analytics channel: Python tells the player which trainer connected.

The Unity package registers this channel and logs what it receives; mlagents-learn sends one
``TrainingEnvironmentInitialized`` (packed in a protobuf ``Any``) right after the handshake.
"""

from __future__ import annotations

import sys
import uuid

from google.protobuf.any_pb2 import Any

from unity_gym.communicator_objects.training_analytics_pb2 import TrainingEnvironmentInitialized
from unity_gym.exception import UnityCommunicationException
from unity_gym.side_channel.messages import IncomingMessage, OutgoingMessage
from unity_gym.side_channel.side_channel import SideChannel

TRAINING_ANALYTICS_CHANNEL_ID = uuid.UUID("b664a4a9-d86f-5a5f-95cb-e8353a7e8356")


class DefaultTrainingAnalyticsSideChannel(SideChannel):
    CHANNEL_ID = TRAINING_ANALYTICS_CHANNEL_ID

    def __init__(self) -> None:
        super().__init__(TRAINING_ANALYTICS_CHANNEL_ID)

    def on_message_received(self, msg: IncomingMessage) -> None:
        raise UnityCommunicationException(
            "The training analytics channel received a message from Unity; players never send "
            "on this channel."
        )

    def environment_initialized(self, package_version: str) -> None:
        info = sys.version_info
        packed = Any()
        packed.Pack(
            TrainingEnvironmentInitialized(
                python_version=f"{info[0]}.{info[1]}.{info[2]}",
                mlagents_version="Custom",
                mlagents_envs_version=package_version,
                torch_version="Unknown",
                torch_device_type="Unknown",
            )
        )
        msg = OutgoingMessage()
        msg.set_raw_bytes(packed.SerializeToString())
        self.queue_message_to_send(msg)
