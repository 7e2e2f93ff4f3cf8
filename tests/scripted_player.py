"""An in-process fake player that sends scripted messages, for protocol and failure tests."""

from __future__ import annotations

import threading
from collections.abc import Sequence

import grpc

from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from unity_gym.communicator_objects.header_pb2 import HeaderProto
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_rl_initialization_output_pb2 import (
    UnityRLInitializationOutputProto,
)

EXCHANGE = "/communicator_objects.UnityToExternalProto/Exchange"


def init_message(version: str = "1.5.0") -> UnityMessageProto:
    return UnityMessageProto(
        header=HeaderProto(status=200),
        unity_output=UnityOutputProto(
            rl_initialization_output=UnityRLInitializationOutputProto(
                name="Scripted",
                communication_version=version,
                package_version="3.0.0",
                capabilities=UnityRLCapabilitiesProto(baseRLCapabilities=True, hybridActions=True),
            )
        ),
    )


def empty_message() -> UnityMessageProto:
    return UnityMessageProto(header=HeaderProto(status=200))


class ScriptedPlayer(threading.Thread):
    """Sends each scripted message (or raw bytes) in turn and records Python's answers."""

    def __init__(self, port: int, script: Sequence[UnityMessageProto | bytes]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.script = list(script)
        self.answers: list[UnityMessageProto] = []
        self.error: Exception | None = None

    def run(self) -> None:
        # Short reconnect backoff: this thread starts before the environment's server exists.
        channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 100),
            ],
        )
        call = channel.unary_unary(
            EXCHANGE,
            request_serializer=lambda m: m if isinstance(m, bytes) else m.SerializeToString(),
            response_deserializer=UnityMessageProto.FromString,
        )
        try:
            for message in self.script:
                self.answers.append(call(message, wait_for_ready=True, timeout=20))
        except grpc.RpcError as err:
            self.error = err
        finally:
            channel.close()
