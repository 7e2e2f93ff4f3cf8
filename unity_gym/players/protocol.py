"""The Unity side of ML-Agents' gRPC protocol (communication API 1.5.0), as a client loop.

The player is the gRPC *client*: it connects to Python's ``UnityToExternalProto`` server and
drives every exchange, sending its output and blocking until Python answers with the next
input, the way Unity's ``RpcCommunicator`` does:

1. handshake: send the initialization output (name, versions, capabilities); the answer holds
   Python's seed, versions, capabilities and number of areas;
2. send an empty message; its answer is the first real input (normally a RESET);
3. loop: apply the input's side-channel data, then its command (QUIT ends, RESET restarts
   every episode, STEP applies actions and simulates), and send the resulting output.

The first output that contains a behavior also carries its brain parameters. An answer with a
status other than 200 (Python's close sends 400) ends the session cleanly; a gRPC error
(Python gone) raises :class:`ConnectionLost`. Nothing here knows about any environment: the
simulation behind the loop is any :class:`Simulation`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Mapping
from typing import Protocol

import grpc

from unity_gym.base_env import BehaviorSpec
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.command_pb2 import QUIT, RESET
from unity_gym.communicator_objects.header_pb2 import HeaderProto
from unity_gym.communicator_objects.space_type_pb2 import continuous, discrete
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_rl_initialization_output_pb2 import (
    UnityRLInitializationOutputProto,
)
from unity_gym.communicator_objects.unity_rl_input_pb2 import UnityRLInputProto
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto
from unity_gym.communicator_objects.unity_to_external_pb2_grpc import UnityToExternalProtoStub
from unity_gym.launcher import TRAINER_PID_VARIABLE
from unity_gym.protocol_version import (
    COMMUNICATION_VERSION,
    communication_compatible,
    full_capabilities,
)

logger = logging.getLogger(__name__)

PACKAGE_VERSION = "3.0.0"  # the com.unity.ml-agents release that speaks API 1.5.0
STATUS_OK = 200
STATUS_ERROR = 500
# How long the player waits for Python to read a goodbye message before exiting anyway.
_GOODBYE_TIMEOUT_S = 5.0


class ConnectionFailed(Exception):
    """No Python server became reachable in time."""


class ConnectionLost(Exception):
    """An exchange failed at the gRPC level: Python exited, crashed or closed the server."""


class Simulation(Protocol):
    """What the loop drives: the academy of a player."""

    def behavior_specs(self) -> Mapping[str, BehaviorSpec]: ...

    def initialize(self, seed: int, num_areas: int) -> None: ...

    def receive_side_channel(self, data: bytes) -> None: ...

    def reset(self, out: UnityRLOutputProto) -> None: ...

    def step(
        self,
        actions: Mapping[str, UnityRLInputProto.ListAgentActionProto],
        out: UnityRLOutputProto,
    ) -> None: ...


_PARENT_CHECK_S = 0.5  # how often a connecting player checks that its parent still runs


def trainer_alive() -> bool:
    """False once the process that launched this player (``unity_gym.launcher`` names it in
    the environment) has exited; True when unknown or on Windows."""
    pid = os.environ.get(TRAINER_PID_VARIABLE, "")
    if not pid.isdigit() or os.name == "nt":  # Windows' os.kill(pid, 0) sends Ctrl+C
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


class UnityConnection:
    """A gRPC channel to Python's server, with exchanges that never hang on a dead peer."""

    def __init__(self, host: str, port: int, connect_timeout: float) -> None:
        self.target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        # Observations can be large; Unity lifts the receive limit the same way. Like Unity's
        # client, no retries: gRPC's retry support costs CPU on every call even unused.
        options = [
            ("grpc.max_receive_message_length", -1),
            ("grpc.max_send_message_length", -1),
            ("grpc.enable_retries", 0),
        ]
        self._channel = grpc.insecure_channel(self.target, options=options)
        # Wait in slices: a trainer killed before it answered must not leave the player
        # waiting out the whole timeout.
        ready = grpc.channel_ready_future(self._channel)
        deadline = time.monotonic() + connect_timeout
        while True:
            try:
                ready.result(timeout=max(0.0, min(_PARENT_CHECK_S, deadline - time.monotonic())))
                break
            except grpc.FutureTimeoutError:
                orphaned = not trainer_alive()
                if orphaned or time.monotonic() >= deadline:
                    ready.cancel()
                    self._channel.close()
                    why = (
                        "the process that started this player exited"
                        if orphaned
                        else f"no ML-Agents trainer listened on it within {connect_timeout:g} s"
                    )
                    raise ConnectionFailed(f"Gave up connecting to {self.target}: {why}.") from None
        self._exchange = UnityToExternalProtoStub(self._channel).Exchange

    def exchange(
        self, message: UnityMessageProto, timeout: float | None = None
    ) -> UnityMessageProto:
        """Send one message and wait (without limit unless ``timeout``) for Python's answer."""
        try:
            reply: UnityMessageProto = self._exchange(message, timeout=timeout)
        except grpc.RpcError as err:
            code = err.code() if isinstance(err, grpc.Call) else None
            details = err.details() if isinstance(err, grpc.Call) else str(err)
            raise ConnectionLost(
                f"Lost the connection to the trainer at {self.target} ({code}: {details})."
            ) from None
        return reply

    def close(self) -> None:
        self._channel.close()


def brain_parameters(
    name: str, spec: BehaviorSpec, hybrid_supported: bool = True
) -> BrainParametersProto:
    """The brain parameters Unity sends the first time a behavior appears.

    Trainers without the hybrid-action capability also get the pre-1.3 action fields.
    """
    action_spec = spec.action_spec
    brain = BrainParametersProto(brain_name=name, is_training=True)
    brain.action_spec.num_continuous_actions = action_spec.continuous_size
    brain.action_spec.num_discrete_actions = action_spec.discrete_size
    brain.action_spec.discrete_branch_sizes.extend(action_spec.discrete_branches)
    if not hybrid_supported:
        if action_spec.continuous_size:
            brain.vector_action_size_deprecated.append(action_spec.continuous_size)
            brain.vector_action_space_type_deprecated = continuous
        else:
            brain.vector_action_size_deprecated.extend(action_spec.discrete_branches)
            brain.vector_action_space_type_deprecated = discrete
    return brain


def run_session(connection: UnityConnection, simulation: Simulation, name: str) -> int:
    """Handshake, then exchange until Python ends the session; returns the exit code.

    Raises :class:`ConnectionLost` if Python disappears mid-session.
    """
    handshake = UnityMessageProto(
        header=HeaderProto(status=STATUS_OK),
        unity_output=UnityOutputProto(
            rl_initialization_output=UnityRLInitializationOutputProto(
                name=name,
                communication_version=COMMUNICATION_VERSION,
                package_version=PACKAGE_VERSION,
                capabilities=full_capabilities(),
            )
        ),
    )
    reply = connection.exchange(handshake)
    if reply.header.status != STATUS_OK:
        logger.info("The trainer refused the handshake (status %d).", reply.header.status)
        return 0
    init = reply.unity_input.rl_initialization_input
    logger.info(
        "Connected to a trainer: communication API %s, package %s, seed %d, %d area(s).",
        init.communication_version,
        init.package_version,
        init.seed,
        init.num_areas,
    )
    if not communication_compatible(COMMUNICATION_VERSION, init.communication_version):
        warning = (
            f"Communication protocol between python ({init.communication_version}) and Unity "
            f"({COMMUNICATION_VERSION}) have different versions which make them incompatible. "
            f"Python library version: {init.package_version}."
        )
        logger.warning(warning)
        _say_goodbye(connection, warning)
        return 0
    hybrid_supported = init.capabilities.hybridActions
    simulation.initialize(init.seed, max(1, init.num_areas))

    reply = connection.exchange(UnityMessageProto(header=HeaderProto(status=STATUS_OK)))
    specs = simulation.behavior_specs()
    announced: set[str] = set()
    while True:
        if reply.header.status != STATUS_OK:
            logger.info("The trainer closed the session (status %d).", reply.header.status)
            return 0
        rl_input = reply.unity_input.rl_input
        simulation.receive_side_channel(rl_input.side_channel)
        command = rl_input.command
        if command == QUIT:
            logger.info("The trainer sent QUIT.")
            return 0
        message = UnityMessageProto()
        message.header.status = STATUS_OK
        out = message.unity_output.rl_output
        if command == RESET:
            simulation.reset(out)
        else:
            simulation.step(rl_input.agent_actions, out)
        new = [b for b in out.agentInfos if b not in announced]
        if new:
            brains = message.unity_output.rl_initialization_output.brain_parameters
            for behavior in new:
                brains.append(brain_parameters(behavior, specs[behavior], hybrid_supported))
                announced.add(behavior)
        reply = connection.exchange(message)


def _say_goodbye(connection: UnityConnection, reason: str) -> None:
    """Tell Python, instead of the empty second handshake message, that the player quits."""
    goodbye = UnityMessageProto(header=HeaderProto(status=STATUS_ERROR, message=reason))
    # Python may already have hung up, or never answer a player that is leaving.
    with contextlib.suppress(ConnectionLost):
        connection.exchange(goodbye, timeout=_GOODBYE_TIMEOUT_S)
