"""Players on another machine: :class:`PlayerHost` runs them there, :class:`RemoteEnvironment`
drives each from here with :class:`UnityEnvironment`'s API.

A host runs one or more players on its own node, each as a local :class:`UnityEnvironment`
over loopback gRPC, so no player's port ever leaves that node. Between learner and host, one
call per exchange carries every player's actions (all behaviors) and framed side-channel
bytes one way, and their decision and terminal steps (numpy batches) and side-channel bytes
back, pickled once per call: no per-agent round trips, and the players of one host simulate
in parallel while other hosts do the same.

An exchange that asks no agent for a decision (between decision boundaries, a player may send
only episode ends) is answered by the learner's :class:`~unity_gym.agent_slots.AgentSlots`
with an action-less exchange, at once. Such follow-ups are what makes steps cost more than
one round trip, so a learner may let the host make them itself (``run_ahead``): the host
exchanges again while no decision is asked, and the learner's next exchanges are served from
what came back. Nothing changes in what the learner sees, exchange by exchange.

Side channels stay where the user made them, on the learner: their outgoing messages are
relayed to the host, which hands them to the player on relay channels with the same ids, and
the player's messages on those ids come back to them. How calls reach a host is a
:class:`HostLink` (:mod:`unity_gym.ray_players` implements it with Ray actors).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps, TerminalSteps
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException, UnityException
from unity_gym.side_channel.messages import IncomingMessage
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.side_channel.side_channel_manager import (
    SideChannelManager,
    pack_side_channel_messages,
    unpack_side_channel_messages,
)

# One player's part of a batched exchange: its actions by behavior, side-channel bytes, and how
# many action-less exchanges the host may make after it while no decision is asked.
Exchange = tuple[dict[str, ActionTuple], bytes, int]


@dataclass
class HostReply:
    """What a host returns for one player after a reset or an exchange.

    ``ahead``: the exchanges the host made right after this one, action-less and without
    side-channel messages, because this one (and each before it) asked no agent for a
    decision; the last may be the failure that ended them.
    """

    steps: dict[str, tuple[DecisionSteps, TerminalSteps]]
    specs: dict[str, BehaviorSpec]  # only those the learner has not been sent yet
    side_channel: bytes = b""
    ahead: list[HostReply | UnityException] = field(default_factory=list)

    @property
    def asks_no_decision(self) -> bool:
        return all(len(decisions) == 0 for decisions, _ in self.steps.values())


@dataclass(frozen=True)
class HostInfo:
    """Where a player runs (for messages, and for tests that kill players)."""

    hostname: str
    host_pid: int
    player_pid: int | None
    port: int
    node_id: str = ""
    specs: dict[str, BehaviorSpec] = field(default_factory=dict)


def pack(value: object) -> bytes:
    """Batches travel as one pickled byte string: cheaper than the transport's per-object
    serialisation of many small arrays."""
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Any:
    """The learner and its hosts are one trusted installation (the cluster's own transport
    already runs pickled code); nothing else produces these bytes."""
    return pickle.loads(data)


class _RelayChannel(SideChannel):
    """On the host: passes raw payloads between the player and the learner's channel."""

    def __init__(self, channel_id: uuid.UUID, inbox: list[tuple[uuid.UUID, bytes]]) -> None:
        super().__init__(channel_id)
        self._inbox = inbox

    def on_message_received(self, msg: IncomingMessage) -> None:
        self._inbox.append((self.channel_id, msg.get_raw_bytes()))


class _HostedPlayer:
    """One player on the host, with the relay channels of its learner-side channels."""

    def __init__(self, environment: Mapping[str, Any], channel_ids: Sequence[uuid.UUID]) -> None:
        self.inbox: list[tuple[uuid.UUID, bytes]] = []
        self.relays = {cid: _RelayChannel(cid, self.inbox) for cid in channel_ids}
        self.env = UnityEnvironment(**environment, side_channels=list(self.relays.values()))
        self.announced: set[str] = set(self.env.behavior_specs)  # specs the learner has

    def queue(self, side_channel: bytes) -> None:
        for channel_id, payload in unpack_side_channel_messages(side_channel):
            self.relays[channel_id].message_queue.append(payload)

    def reply(self) -> HostReply:
        """The steps of every behavior, and the specs of behaviors new to the learner."""
        env = self.env
        specs = env.behavior_specs
        new = {name: specs[name] for name in specs if name not in self.announced}
        self.announced.update(new)
        inbox = pack_side_channel_messages(self.inbox)
        self.inbox.clear()
        return HostReply({name: env.get_steps(name) for name in specs}, new, inbox)


class PlayerHost:
    """Runs players on this node, each a :class:`UnityEnvironment` on loopback gRPC, keyed by
    the learner's player keys."""

    def __init__(self) -> None:
        self._players: dict[str, _HostedPlayer] = {}

    def open(
        self, key: str, environment: dict[str, Any], channel_ids: Sequence[uuid.UUID]
    ) -> HostInfo:
        """Start a player (``UnityEnvironment``'s keyword arguments, ``side_channels``
        excepted; ``channel_ids``: the learner's side channels, relayed both ways)."""
        self._players[key] = player = _HostedPlayer(environment, channel_ids)
        return HostInfo(
            hostname=socket.gethostname(),
            host_pid=os.getpid(),
            player_pid=player.env.player_pid,
            port=player.env.port,
            node_id=self.node_id(),
            specs=dict(player.env.behavior_specs),
        )

    def node_id(self) -> str:
        """This host's node in its cluster ("" outside one)."""
        return ""

    def reset(self, key: str, side_channel: bytes) -> HostReply:
        player = self._players[key]
        player.queue(side_channel)
        player.env.reset()
        return player.reply()

    def step(self, batch: bytes) -> bytes:
        """One exchange of every player in ``batch`` (packed ``{key: Exchange}``), the players
        simulating in parallel; returns packed ``{key: HostReply or its failure}``. A player
        whose exchange asks no decision exchanges again, action-less, up to its exchange's
        allowance (the replies' ``ahead``)."""
        exchanges: dict[str, Exchange] = unpack(batch)
        results: dict[str, HostReply | UnityException] = {}
        running = []
        for key, (actions, side_channel, _ahead) in exchanges.items():
            player = self._players[key]
            try:
                player.queue(side_channel)
                for name, action in actions.items():
                    player.env.set_actions(name, action)
                player.env.step_async()
                running.append(key)
            except UnityException as error:
                results[key] = error
        while running:
            again = []
            for key in running:
                player = self._players[key]
                first = results.get(key)
                made = first.ahead if isinstance(first, HostReply) else None
                try:
                    player.env.step_wait()
                    reply = player.reply()
                except UnityException as error:
                    if made is None:
                        results[key] = error
                    else:
                        made.append(error)
                    continue
                if made is None:
                    results[key] = reply
                    made = reply.ahead
                else:
                    made.append(reply)
                if reply.asks_no_decision and len(made) < exchanges[key][2]:
                    try:
                        player.env.step_async()
                        again.append(key)
                    except UnityException as error:
                        made.append(error)
            running = again
        return pack(results)

    def close(self, key: str) -> None:
        player = self._players.pop(key, None)
        if player is not None:
            player.env.close()

    def terminate(self, key: str) -> None:
        player = self._players.pop(key, None)
        if player is not None:
            player.env.terminate()


class PendingReply(ABC):
    """A call in flight to a host."""

    @abstractmethod
    def wait(self, timeout: float) -> Any:
        """The call's result. Raises the player's own failure, a
        :class:`~unity_gym.exception.RemotePlayerLostException` when the host itself is gone,
        or :class:`~unity_gym.exception.UnityTimeOutException`."""


class HostLink(ABC):
    """The learner's end of one player on a :class:`PlayerHost`."""

    #: Where the player runs, for messages ("node vm (Ray node 0a1b2c)").
    where: str = "a remote node"

    @abstractmethod
    def reset(self, side_channel: bytes) -> PendingReply: ...

    @abstractmethod
    def step(
        self, actions: dict[str, ActionTuple], side_channel: bytes, ahead: int
    ) -> PendingReply:
        """One exchange; ``ahead``: see :data:`Exchange`."""

    @abstractmethod
    def close(self, terminate: bool) -> PendingReply:
        """End the player (``terminate``: kill it at once)."""

    @abstractmethod
    def release(self) -> None:
        """Forget the player; a host left without players ends."""


# Extra seconds a learner waits for a host beyond the player's own timeout_wait, which the
# host enforces itself: only a host or node that is gone takes longer.
HOST_GRACE_S = 30.0
# How long closing waits for a host to close its player before giving up on it.
CLOSE_WAIT_S = 10.0


class _MadeAhead(PendingReply):
    """An exchange the host has already made (see :attr:`HostReply.ahead`)."""

    def __init__(self, result: HostReply | UnityException) -> None:
        self._result = result

    def wait(self, timeout: float) -> HostReply:
        if isinstance(self._result, UnityException):
            raise self._result
        return self._result


class RemoteEnvironment(UnityEnvironment):
    """:class:`UnityEnvironment`'s API over a player on a :class:`PlayerHost`.

    Everything above the low-level API (``AgentSlots``, the adapters, the CLI) uses it as it
    uses a local environment: same specs, steps, side channels and exceptions, and
    ``step_async``/``step_wait`` for players that simulate in parallel. ``port`` and
    ``player_pid`` are on the host's node (:attr:`info` says which).

    ``run_ahead`` (default 0): how many action-less exchanges the host may make after an
    exchange that asks no decision. Set it only where each such exchange is answered by an
    action-less one at once, as ``AgentSlots`` does: the next ``step_async`` is then served
    from what the host made, and side-channel messages queued meanwhile go with the next
    exchange that reaches the host.
    """

    def __init__(
        self,
        link: HostLink,
        info: HostInfo,
        side_channels: Sequence[SideChannel] = (),
        timeout_wait: int = 60,
    ) -> None:
        # Deliberately not UnityEnvironment.__init__: the player, its port and the handshake
        # are the host's. The state below is what the inherited methods read.
        self._link = link
        self.info = info
        self._timeout_wait = timeout_wait
        self._side_channel_manager = SideChannelManager(side_channels)
        self._env_specs = dict(info.specs)
        self._env_state = {}
        self._env_actions = {}
        self._pending: PendingReply | None = None
        self._ahead: list[HostReply | UnityException] = []
        self.run_ahead = 0
        self._awaiting_reply = False
        self._loaded = True
        self._player_name = info.hostname

    @property
    def port(self) -> int:
        """The player's port on the host's node (loopback there)."""
        return self.info.port

    @property
    def player_pid(self) -> int | None:
        return self.info.player_pid

    def reset(self) -> None:
        self._require_loaded()
        if self._awaiting_reply:
            self.step_wait()
        self._ahead = []
        self._handle_reply(self._wait(self._link.reset(self._outgoing())))

    def step_async(self) -> None:
        self._require_loaded()
        if self._awaiting_reply:
            raise UnityEnvironmentException("step_async() called twice without step_wait().")
        if self._ahead:  # made already; no agent asked for a decision, so no actions are queued
            self._pending = _MadeAhead(self._ahead.pop(0))
        else:  # the host's own environment turns a first step into Unity's first reset
            self._pending = self._link.step(
                dict(self._env_actions), self._outgoing(), self.run_ahead
            )
        self._awaiting_reply = True

    def step_wait(self) -> None:
        self._require_loaded()
        if not self._awaiting_reply or self._pending is None:
            raise UnityEnvironmentException("step_wait() called without step_async().")
        pending, self._pending, self._awaiting_reply = self._pending, None, False
        self._handle_reply(self._wait(pending))

    def _close(self, timeout: float | None = None) -> None:
        """Ask the host to close the player (``timeout`` 0: to kill it), then let it go."""
        self._loaded = False
        self._pending = None
        self._ahead = []
        # The host may be gone already; the player is released either way.
        with contextlib.suppress(Exception):
            wait = CLOSE_WAIT_S if timeout is None else max(timeout, 5.0)
            self._link.close(terminate=timeout == 0).wait(wait)
        self._link.release()

    def _outgoing(self) -> bytes:
        return self._side_channel_manager.generate_side_channel_messages()

    def _wait(self, pending: PendingReply) -> HostReply:
        try:
            reply = pending.wait(self._timeout_wait + HOST_GRACE_S)
        except BaseException:
            self._close(0)
            raise
        if not isinstance(reply, HostReply):
            self._close(0)
            raise UnityEnvironmentException(
                f"The player host on {self._link.where} answered with {type(reply).__name__} "
                "instead of a step; the learner and the host run different unity-sb3 versions."
            )
        return reply

    def _handle_reply(self, reply: HostReply) -> None:
        self._env_specs.update(reply.specs)
        self._env_state = reply.steps
        if reply.ahead:  # a reply from the host, with the exchanges it made after it
            self._ahead = list(reply.ahead)
        self._env_actions.clear()
        self._side_channel_manager.process_side_channel_message(reply.side_channel)

    def __repr__(self) -> str:
        status = "open" if self._loaded else "closed"
        return (
            f"RemoteEnvironment(player pid {self.info.player_pid} on {self._link.where}, {status})"
        )
