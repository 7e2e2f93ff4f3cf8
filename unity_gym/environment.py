"""``UnityEnvironment``: the low-level API over one player (Unity build, Editor or built-in).

Same constructor, properties and methods as ``mlagents_envs.environment.UnityEnvironment``,
so existing scripts port by changing imports. ``file_name="builtin:NAME"`` starts one of the
built-in stand-in players (``unity-sb3 envs`` lists them).
"""

from __future__ import annotations

import logging
import uuid
import weakref
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from unity_gym import __version__
from unity_gym.base_env import (
    ActionTuple,
    AgentId,
    BaseEnv,
    BehaviorMapping,
    BehaviorName,
    BehaviorSpec,
    DecisionSteps,
    TerminalSteps,
    matching_behaviors,
)
from unity_gym.communicator import RpcCommunicator
from unity_gym.communicator_objects.agent_action_pb2 import AgentActionProto
from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from unity_gym.communicator_objects.command_pb2 import RESET, STEP
from unity_gym.communicator_objects.unity_input_pb2 import UnityInputProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_rl_initialization_input_pb2 import (
    UnityRLInitializationInputProto,
)
from unity_gym.exception import (
    UnityActionException,
    UnityCommunicatorStoppedException,
    UnityEnvironmentException,
)
from unity_gym.launcher import PlayerProcess
from unity_gym.protocol_version import (
    COMMUNICATION_VERSION,
    communication_compatible,
    full_capabilities,
)
from unity_gym.rpc_utils import behavior_spec_from_proto, steps_from_proto
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.side_channel.side_channel_manager import SideChannelManager
from unity_gym.side_channel.training_analytics_side_channel import (
    DefaultTrainingAnalyticsSideChannel,
)

logger = logging.getLogger(__name__)


FREE_PORT = 0


def listening_port(file_name: str | None, worker_id: int | None, base_port: int | None) -> int:
    """The port Python listens on (:data:`FREE_PORT`: the OS picks one); see UnityEnvironment."""
    if file_name is None:
        editor_port = UnityEnvironment.DEFAULT_EDITOR_PORT if base_port is None else base_port
        return editor_port + (worker_id or 0)
    if base_port == FREE_PORT or (base_port is None and worker_id is None):
        return FREE_PORT
    base = UnityEnvironment.BASE_ENVIRONMENT_PORT if base_port is None else base_port
    return base + (worker_id or 0)


def _shutdown(
    communicator: RpcCommunicator | None, player: PlayerProcess | None, timeout: float
) -> None:
    """Close the link and end the player; safe to call more than once (also from a finalizer)."""
    if communicator is not None:
        communicator.close()
    if player is not None:
        player.stop(timeout)


class UnityEnvironment(BaseEnv):
    """One player process (or the Editor) driven step by step.

    Python listens and the player connects. Ports:

    - a build or built-in with neither ``worker_id`` nor ``base_port`` given (or
      ``base_port=0``): a free port the operating system assigns while the server binds it, then
      passed to the player, so any number of environments can be open in one process;
    - ``worker_id`` and/or ``base_port`` given: ML-Agents' ``base_port + worker_id`` (base port
      5005), refused with :class:`~unity_gym.exception.UnityWorkerInUseException` when taken;
    - the Editor (``file_name=None``): ``base_port`` or 5004, where the Editor connects.

    ``worker_id`` also names the player's log (``Player-<worker_id>.log``). The connection is
    unauthenticated: keep ``host`` on loopback (the default) unless the network is trusted.
    """

    # Communication protocol version; players with the same major version are compatible.
    API_VERSION = COMMUNICATION_VERSION
    DEFAULT_EDITOR_PORT = 5004
    BASE_ENVIRONMENT_PORT = 5005

    def __init__(
        self,
        file_name: str | None = None,
        worker_id: int | None = None,
        base_port: int | None = None,
        seed: int = 0,
        no_graphics: bool = False,
        timeout_wait: int = 60,
        additional_args: list[str] | None = None,
        side_channels: list[SideChannel] | None = None,
        log_folder: str | None = None,
        num_areas: int = 1,
        host: str = "127.0.0.1",
    ) -> None:
        if file_name is None and worker_id not in (None, 0):
            raise UnityEnvironmentException(
                "If the environment name is None, the worker-id must be 0 in order to connect "
                "with the Editor."
            )
        if not -(2**31) <= seed < 2**31:
            raise UnityEnvironmentException(
                f"seed={seed} does not fit Unity's 32-bit signed seed; pass a seed from "
                f"{-(2**31)} to {2**31 - 1}."
            )
        port = listening_port(file_name, worker_id, base_port)
        worker_id = worker_id or 0
        self._worker_id = worker_id
        self._timeout_wait = timeout_wait
        self._loaded = False
        self._player: PlayerProcess | None = None
        self._env_state: dict[str, tuple[DecisionSteps, TerminalSteps]] = {}
        self._env_specs: dict[str, BehaviorSpec] = {}
        self._env_actions: dict[str, ActionTuple] = {}
        self._is_first_message = True
        self._awaiting_reply = False

        channels = list(side_channels or [])
        analytics: DefaultTrainingAnalyticsSideChannel | None = None
        if DefaultTrainingAnalyticsSideChannel.CHANNEL_ID not in [c.channel_id for c in channels]:
            analytics = DefaultTrainingAnalyticsSideChannel()
            channels.append(analytics)
        self._side_channel_manager = SideChannelManager(channels)

        self._communicator = RpcCommunicator(port, host=host, timeout_wait=timeout_wait)
        self._port = self._communicator.port
        self._finalizer = weakref.finalize(self, _shutdown, self._communicator, None, 0)
        if file_name is not None:
            try:
                self._player = PlayerProcess.start(
                    file_name,
                    self._port,
                    no_graphics=no_graphics,
                    log_folder=log_folder,
                    worker_id=worker_id,
                    additional_args=additional_args,
                )
            except BaseException:
                self._finalizer()
                raise
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _shutdown, self._communicator, self._player, 0)
        else:
            logger.info(
                "Listening on port %d. Start training by pressing the Play button in the Unity "
                "Editor.",
                self._port,
            )
        self._loaded = True

        init_input = UnityInputProto(
            rl_initialization_input=UnityRLInitializationInputProto(
                seed=seed,
                communication_version=self.API_VERSION,
                package_version=__version__,
                capabilities=full_capabilities(),
                num_areas=num_areas,
            )
        )
        try:
            init_output = self._communicator.initialize(init_input, self._poll_player)
            params = init_output.rl_initialization_output
            if not communication_compatible(self.API_VERSION, params.communication_version):
                raise UnityEnvironmentException(
                    "The communication API version is not compatible between Unity and python. "
                    f"Python API: {self.API_VERSION}, Unity API: {params.communication_version} "
                    f"(Unity package {params.package_version or 'unknown'}). Use a Unity "
                    "ML-Agents package that speaks communication API 1.x (com.unity.ml-agents "
                    "2.0 or newer; release 21 speaks 1.5.0)."
                )
        except BaseException:
            self._close(0)
            raise
        if not params.capabilities.baseRLCapabilities:
            logger.warning(
                "The Unity player (package %s) does not announce the base RL capabilities; "
                "upgrade its ML-Agents package.",
                params.package_version,
            )
        self.academy_capabilities: UnityRLCapabilitiesProto = params.capabilities
        self._player_name = params.name
        self._update_behavior_specs(init_output)
        if analytics is not None:
            analytics.environment_initialized(__version__)

    # -- properties ---------------------------------------------------------------------

    @property
    def behavior_specs(self) -> Mapping[BehaviorName, BehaviorSpec]:
        return BehaviorMapping(self._env_specs)

    @property
    def side_channels(self) -> Mapping[uuid.UUID, SideChannel]:
        """This environment's side channels by channel id (read-only view)."""
        return MappingProxyType(self._side_channel_manager.channels)

    @property
    def port(self) -> int:
        return self._port

    @property
    def player_pid(self) -> int | None:
        """Process id of the player this environment started (None for the Editor)."""
        return self._player.pid if self._player is not None else None

    # -- stepping -----------------------------------------------------------------------

    def reset(self) -> None:
        self._require_loaded()
        if self._awaiting_reply:
            self.step_wait()  # finish the step in flight; the reset supersedes its result
        output = self._communicator.exchange(self._generate_reset_input(), self._poll_player)
        self._handle_output(output)
        self._is_first_message = False

    def step(self) -> None:
        self.step_async()
        self.step_wait()

    def step_async(self) -> None:
        """Send the queued actions (a reset on the very first step) without waiting.

        With several environments, call ``step_async`` on each, then ``step_wait`` on each:
        the players simulate in parallel and the wall time is that of the slowest.
        """
        self._require_loaded()
        if self._awaiting_reply:
            raise UnityEnvironmentException("step_async() called twice without step_wait().")
        if self._is_first_message:
            self._communicator.send(self._generate_reset_input())
            self._is_first_message = False
        else:
            self._communicator.send(self._generate_step_input())
        self._awaiting_reply = True

    def step_wait(self) -> None:
        """Wait for the player's reply to :meth:`step_async` and update the steps."""
        self._require_loaded()
        if not self._awaiting_reply:
            raise UnityEnvironmentException("step_wait() called without step_async().")
        self._awaiting_reply = False
        self._handle_output(self._communicator.receive(self._poll_player))

    def set_actions(self, behavior_name: BehaviorName, action: ActionTuple) -> None:
        self._assert_behavior_exists(behavior_name)
        if behavior_name not in self._env_state:
            return
        n_agents = len(self._env_state[behavior_name][0])
        spec = self._env_specs[behavior_name].action_spec
        self._env_actions[behavior_name] = spec._validate_action(action, n_agents, behavior_name)

    def set_action_for_agent(
        self, behavior_name: BehaviorName, agent_id: AgentId, action: ActionTuple
    ) -> None:
        self._assert_behavior_exists(behavior_name)
        if behavior_name not in self._env_state:
            return
        spec = self._env_specs[behavior_name].action_spec
        action = spec._validate_action(action, 1, behavior_name)
        decision_steps = self._env_state[behavior_name][0]
        index = decision_steps.agent_id_to_index.get(int(agent_id))
        if index is None:
            raise UnityActionException(
                f"agent_id {agent_id} of behavior {behavior_name} did not request a decision at "
                "the previous step, so it cannot take an action now."
            )
        if behavior_name not in self._env_actions:
            self._env_actions[behavior_name] = spec.empty_action(len(decision_steps))
        queued = self._env_actions[behavior_name]
        queued.continuous[index] = action.continuous[0]
        queued.discrete[index] = action.discrete[0]

    def get_steps(self, behavior_name: BehaviorName) -> tuple[DecisionSteps, TerminalSteps]:
        self._assert_behavior_exists(behavior_name)
        spec = self._env_specs[behavior_name]
        return self._env_state.get(
            behavior_name, (DecisionSteps.empty(spec), TerminalSteps.empty(spec))
        )

    # -- closing ------------------------------------------------------------------------

    def close(self) -> None:
        """Tell the player to quit, wait for it (then kill it), and free the port."""
        if self._loaded:
            self._close()
        else:
            raise UnityEnvironmentException("No Unity environment is loaded.")

    def terminate(self) -> None:
        """End the player at once (killed, no goodbye) and free the port: for a player that
        crashed or hangs. Safe to call on a closed environment."""
        if self._loaded:
            self._close(0)

    def _close(self, timeout: float | None = None) -> None:
        self._loaded = False
        self._finalizer.detach()
        _shutdown(
            self._communicator, self._player, self._timeout_wait if timeout is None else timeout
        )

    def __enter__(self) -> UnityEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loaded:
            self._close()

    # -- internals ----------------------------------------------------------------------

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise UnityEnvironmentException("No Unity environment is loaded.")

    def _poll_player(self) -> None:
        if self._player is not None:
            self._player.raise_if_exited()

    def _assert_behavior_exists(self, behavior_name: str) -> None:
        if behavior_name not in self._env_specs:
            known = ", ".join(self._env_specs) or "none yet (call reset() first)"
            matches = matching_behaviors(behavior_name, self._env_specs)
            hint = f" Did you mean {' or '.join(map(repr, matches))}?" if matches else ""
            raise UnityActionException(
                f"The group {behavior_name} does not correspond to an existing agent group in "
                f"the environment. Known behaviors: {known}.{hint}"
            )

    def _handle_output(self, output: UnityOutputProto | None) -> None:
        if output is None:
            self._close(0)
            raise UnityCommunicatorStoppedException("Communicator has exited: the player quit.")
        self._update_behavior_specs(output)
        rl_output = output.rl_output
        infos = rl_output.agentInfos
        for name, spec in self._env_specs.items():
            if name in infos:
                self._env_state[name] = steps_from_proto(infos[name].value, spec)
            else:
                self._env_state[name] = (DecisionSteps.empty(spec), TerminalSteps.empty(spec))
        self._env_actions.clear()
        self._side_channel_manager.process_side_channel_message(rl_output.side_channel)

    def _update_behavior_specs(self, output: UnityOutputProto) -> None:
        for brain in output.rl_initialization_output.brain_parameters:
            infos = output.rl_output.agentInfos.get(brain.brain_name)
            if infos is not None and len(infos.value) > 0:
                self._env_specs[brain.brain_name] = behavior_spec_from_proto(brain, infos.value[0])
                logger.info("Connected new brain: %s", brain.brain_name)

    def _generate_reset_input(self) -> UnityInputProto:
        message = UnityInputProto()
        message.rl_input.command = RESET
        message.rl_input.side_channel = self._side_channel_manager.generate_side_channel_messages()
        return message

    def _generate_step_input(self) -> UnityInputProto:
        message = UnityInputProto()
        rl_input = message.rl_input
        rl_input.command = STEP
        # Players older than API 1.3 read only the flat deprecated action vector.
        legacy = not self.academy_capabilities.hybridActions
        for name, (decision_steps, _) in self._env_state.items():
            n_agents = len(decision_steps)
            if n_agents == 0:
                continue
            action = self._env_actions.get(name)
            if action is None:
                action = self._env_specs[name].action_spec.empty_action(n_agents)
            actions = rl_input.agent_actions[name].value
            continuous = action.continuous.tolist() if action.continuous.shape[1] else None
            discrete = action.discrete.tolist() if action.discrete.shape[1] else None
            for i in range(n_agents):
                proto: AgentActionProto = actions.add()
                if continuous is not None:
                    proto.continuous_actions.extend(continuous[i])
                if discrete is not None:
                    proto.discrete_actions.extend(discrete[i])
                if legacy:
                    proto.vector_actions_deprecated.extend(
                        (continuous[i] if continuous is not None else [])
                        + (discrete[i] if discrete is not None else [])
                    )
        rl_input.side_channel = self._side_channel_manager.generate_side_channel_messages()
        return message

    def __repr__(self) -> str:
        status: Any = "open" if self._loaded else "closed"
        return f"UnityEnvironment(player={self._player_name!r}, port={self._port}, {status})"
