"""Players on a Ray cluster: one Ray actor per player, spread over the cluster's nodes.

Give an adapter (or :class:`~unity_gym.env_group.WorkerSettings`) ``ray_players=RayPlayers(...)``
and each of its players starts inside a Ray actor (:class:`RayPlayerHost`) on whichever node
has the CPUs and custom resources asked for; the actor runs the build or built-in there over
loopback gRPC and exchanges batched steps with the learner (see
:mod:`unity_gym.remote_environment`). A player that crashes, an actor that dies and a node that
leaves the cluster all surface as restartable failures, so a ``restart_policy`` starts a new
actor on a node that is still there. Ray is imported only when a player is opened this way
(``pip install "unity-sb3[ray]"``).
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from unity_gym.base_env import ActionTuple
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import (
    RemotePlayerLostException,
    UnityEnvironmentException,
    UnityException,
    UnityTimeOutException,
)
from unity_gym.remote_environment import (
    Exchange,
    HostInfo,
    HostLink,
    PendingReply,
    PlayerHost,
    RemoteEnvironment,
    pack,
    unpack,
)
from unity_gym.side_channel.side_channel import SideChannel

logger = logging.getLogger(__name__)

INSTALL_HINT = 'pip install "unity-sb3[ray]"'
# Players open concurrently (one thread each): the first connects, the others wait for it.
_CONNECTING = threading.Lock()


@dataclass(frozen=True)
class RayPlayers:
    """Where and with what each player runs on a Ray cluster.

    :param address: the cluster: ``"auto"`` (the one this machine belongs to, or
        ``RAY_ADDRESS``), ``"HOST:PORT"`` of its head node, ``"ray://HOST:PORT"`` for Ray
        Client, or ``None`` for a Ray instance started for this process alone. Ignored when
        this process is already connected (``ray.init`` was called).
    :param cpus_per_player: CPUs Ray reserves for each player (fractions allowed).
    :param resources: custom resources each player needs, e.g. ``{"unity_build": 1}`` for
        nodes started with ``ray start --resources '{"unity_build": 4}'`` (those that have
        the build).
    :param players_per_host: players that share one actor, and so one node: their exchanges
        travel together, one call per step for all of them instead of one each, which cuts
        the per-step overhead; the actor reserves the resources of that many players.
    :param startup_timeout_s: how long a new actor may wait for a node with free resources,
        on top of the player's own ``timeout_wait``.
    """

    address: str | None = "auto"
    cpus_per_player: float = 1.0
    resources: Mapping[str, float] = field(default_factory=dict)
    players_per_host: int = 1
    startup_timeout_s: float = 120.0
    _hosts: _HostPool = field(
        default_factory=lambda: _HostPool(), init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if self.cpus_per_player < 0:
            raise ValueError(f"cpus_per_player must be 0 or more, got {self.cpus_per_player}.")
        if self.players_per_host < 1:
            raise ValueError(f"players_per_host must be at least 1, got {self.players_per_host}.")
        for name, amount in self.resources.items():
            if amount <= 0:
                raise ValueError(f"resources[{name!r}] must be positive, got {amount}.")

    def connect(self) -> None:
        """Connect this process to the cluster now (players' threads would otherwise)."""
        connect(self.address)

    def open(
        self, environment: dict[str, Any], channels: Sequence[SideChannel], timeout_wait: int
    ) -> RemoteEnvironment:
        """Start one player (``UnityEnvironment``'s keyword arguments) on a host with room
        for it, or on a new one."""
        if environment.get("file_name") is None:
            raise UnityEnvironmentException(
                "Players on Ray need a player build or 'builtin:<name>' (env_path / --env): the "
                "Unity Editor runs on this machine only."
            )
        ray = connect(self.address)
        self._check_resources(ray)
        host, key = self._hosts.place(ray, self)
        link = _RayLink(host, key)
        channel_ids = [channel.channel_id for channel in channels]
        try:
            info = _RayPending(host, host.actor.open.remote(key, environment, channel_ids)).wait(
                self.startup_timeout_s + timeout_wait
            )
        except BaseException:
            link.release()
            raise
        return RemoteEnvironment(link, info, channels, timeout_wait)

    def _check_resources(self, ray: ModuleType) -> None:
        """Refuse at once what no node of the cluster has (Ray would wait for it forever)."""
        total = ray.cluster_resources()
        wanted = {"CPU": self.cpus_per_player, **self.resources}
        wanted = {k: v * self.players_per_host for k, v in wanted.items()}
        missing = {k: v for k, v in wanted.items() if v > 0 and total.get(k, 0.0) < v}
        if missing:
            have = ", ".join(f"{k}={v:g}" for k, v in sorted(total.items()) if "node:" not in k)
            asked = ", ".join(f"{k}={v:g}" for k, v in missing.items())
            raise UnityEnvironmentException(
                f"No node of the Ray cluster can host the players: each host of "
                f"{self.players_per_host} player(s) asks for {asked}, and the cluster has "
                f"{have or 'no resources'}. Start nodes with those resources (ray start "
                "--num-cpus N --resources '{\"NAME\": N}'), or ask for less "
                "(ray_cpus_per_player / ray_resources / ray_players_per_host, "
                "--ray-cpus-per-player / --ray-resource / --ray-players-per-host)."
            )


def placement(envs: Sequence[UnityEnvironment]) -> str:
    """Where players run, for a console line: "4 players on Ray: 2 on node a1b2c3d4e5f6 (vm),
    2 on node ..."."""
    counts: Counter[str] = Counter()
    for env in envs:
        if isinstance(env, RemoteEnvironment):
            counts[f"node {env.info.node_id[:12]} ({env.info.hostname})"] += 1
        else:
            counts["this machine"] += 1
    parts = ", ".join(f"{n} on {where}" for where, n in sorted(counts.items()))
    return f"{len(envs)} player{'s' if len(envs) != 1 else ''} on Ray: {parts}"


def connect(address: str | None) -> ModuleType:
    """Ray, connected to ``address`` unless this process already is (see :class:`RayPlayers`)."""
    try:
        import ray
    except ImportError as error:
        raise UnityEnvironmentException(
            f"Players on a Ray cluster need Ray, which is not installed: {INSTALL_HINT}."
        ) from error
    with _CONNECTING:
        if not ray.is_initialized():
            _init(ray, address)
    return ray


def _init(ray: ModuleType, address: str | None) -> None:
    arguments: dict[str, Any] = {"logging_level": logging.WARNING}
    if address is None:
        arguments["include_dashboard"] = False
    try:
        ray.init(address=address, **arguments)
    except (ConnectionError, ValueError, RuntimeError) as error:
        raise UnityEnvironmentException(
            f"Could not connect to the Ray cluster at {address!r}: {str(error).rstrip('.')}. "
            "Start one with "
            "'ray start --head' (and 'ray start --address HEAD:6379' on the other nodes), "
            "or pass its address (ray_address / --ray-address)."
        ) from error


class RayPlayerHost(PlayerHost):
    """:class:`PlayerHost` as a Ray actor: its players' descriptions name its Ray node."""

    def node_id(self) -> str:
        import ray

        return str(ray.get_runtime_context().get_node_id())


_ACTOR_CLASSES: dict[int, Any] = {}


def _actor_class(ray: ModuleType) -> Any:
    """``ray.remote(RayPlayerHost)``, made once per Ray module."""
    key = id(ray)
    if key not in _ACTOR_CLASSES:
        _ACTOR_CLASSES[key] = ray.remote(RayPlayerHost)
    return _ACTOR_CLASSES[key]


class _Host:
    """One host actor and its players, as the learner sees them; batches their exchanges.

    A batch goes out as soon as every player of the host has submitted its exchange, or when
    the learner waits for any player of the pool (then every host's batch goes out, so that
    all hosts simulate in parallel).
    """

    def __init__(self, pool: _HostPool, ray: ModuleType, actor: Any, capacity: int) -> None:
        self.pool = pool
        self.ray = ray
        self.actor = actor
        self.capacity = capacity
        self.keys: set[str] = set()
        self.lost = False
        self.where = "a Ray node"
        self.lock = threading.Lock()
        self._batch = _Batch(self)

    def submit(self, key: str, exchange: Exchange) -> _BatchTicket:
        with self.lock:
            batch = self._batch
            batch.exchanges[key] = exchange
            if len(batch.exchanges) >= len(self.keys):
                self.flush(batch)
            return _BatchTicket(batch, key)

    def flush(self, batch: _Batch | None = None) -> None:
        """Send ``batch`` (default: the one filling up) if it is still the one filling up and
        holds anything (with the host's lock held)."""
        batch = batch or self._batch
        if batch is self._batch and batch.exchanges:
            batch.reference = self.actor.step.remote(pack(batch.exchanges))
            self._batch = _Batch(self)

    def kill(self) -> None:
        self.lost = True
        try:
            self.ray.kill(self.actor, no_restart=True)
        except Exception as error:  # already gone, or the cluster with it
            logger.debug("Killing the player host on %s: %s", self.where, error)


class _Batch:
    """Exchanges of several players of one host, sent as one call."""

    def __init__(self, host: _Host) -> None:
        self.host = host
        self.exchanges: dict[str, Exchange] = {}
        self.reference: Any = None
        self.results: dict[str, Any] | None = None


class _BatchTicket(PendingReply):
    """One player's part of a batch: waiting for it sends the batch if it has not gone yet."""

    def __init__(self, batch: _Batch, key: str) -> None:
        self._batch = batch
        self._key = key

    def wait(self, timeout: float) -> Any:
        batch, host = self._batch, self._batch.host
        host.pool.flush_all()
        with host.lock:
            if batch.results is None:
                try:
                    batch.results = unpack(_RayPending(host, batch.reference).wait(timeout))
                except UnityException as error:  # the host's failure is every player's
                    batch.results = dict.fromkeys(batch.exchanges, error)
        result = batch.results.pop(self._key)
        if isinstance(result, BaseException):
            raise result
        return result


class _HostPool:
    """The host actors of one :class:`RayPlayers`: a new player joins a live host with room,
    else starts a new one (a restarted player usually takes its predecessor's place)."""

    def __init__(self) -> None:
        self._hosts: list[_Host] = []
        self._lock = threading.Lock()

    def place(self, ray: ModuleType, players: RayPlayers) -> tuple[_Host, str]:
        key = uuid.uuid4().hex
        with self._lock:
            self._hosts = [h for h in self._hosts if not h.lost]  # emptied hosts are lost
            host = next((h for h in self._hosts if len(h.keys) < h.capacity and h.ray is ray), None)
            if host is None:
                host = self._start(ray, players)
                self._hosts.append(host)
            host.keys.add(key)
        return host, key

    def flush_all(self) -> None:
        """Send every host's waiting exchanges."""
        with self._lock:
            hosts = list(self._hosts)
        for host in hosts:
            with host.lock:
                host.flush()

    def _start(self, ray: ModuleType, players: RayPlayers) -> _Host:
        count = players.players_per_host
        options: dict[str, Any] = {
            "num_cpus": players.cpus_per_player * count,
            "scheduling_strategy": "SPREAD",
            "max_restarts": 0,
        }
        if players.resources:
            options["resources"] = {k: v * count for k, v in players.resources.items()}
        return _Host(self, ray, _actor_class(ray).options(**options).remote(), count)


class _RayLink(HostLink):
    """One player on a :class:`_Host`."""

    def __init__(self, host: _Host, key: str) -> None:
        self._host = host
        self._key = key

    @property
    def where(self) -> str:  # type: ignore[override]
        return self._host.where

    def reset(self, side_channel: bytes) -> PendingReply:
        return _RayPending(self._host, self._host.actor.reset.remote(self._key, side_channel))

    def step(
        self, actions: dict[str, ActionTuple], side_channel: bytes, ahead: int
    ) -> PendingReply:
        return self._host.submit(self._key, (actions, side_channel, ahead))

    def close(self, terminate: bool) -> PendingReply:
        method = self._host.actor.terminate if terminate else self._host.actor.close
        return _RayPending(self._host, method.remote(self._key))

    def release(self) -> None:
        host = self._host
        with host.lock:
            host.keys.discard(self._key)
            empty = not host.keys
        if empty or host.lost:
            host.kill()


class _RayPending(PendingReply):
    def __init__(self, host: _Host, reference: Any) -> None:
        self._host = host
        self._reference = reference

    def wait(self, timeout: float) -> Any:
        host = self._host
        exceptions = host.ray.exceptions
        try:
            result = host.ray.get(self._reference, timeout=timeout)
        except exceptions.GetTimeoutError:
            host.lost = True  # a host that hangs is killed when its players let go of it
            free = ", ".join(
                f"{k}={v:g}"
                for k, v in sorted(host.ray.available_resources().items())
                if "node:" not in k and "memory" not in k
            )
            raise UnityTimeOutException(
                f"The player host on {host.where} did not answer within {timeout:g} s: its node "
                "is down or overloaded, or no node has had free resources for it (free in the "
                f"cluster now: {free or 'nothing'}; each player reserves ray_cpus_per_player "
                "CPUs and its ray_resources)."
            ) from None
        except exceptions.RayTaskError as error:
            cause = error.cause
            if isinstance(cause, UnityException):
                raise cause from None
            raise UnityEnvironmentException(
                f"The player host on {host.where} failed: {error}"
            ) from None
        except exceptions.RayActorError as error:
            host.lost = True
            raise RemotePlayerLostException(
                f"The player host on {host.where} is gone ({_first_line(error)}); its process "
                "or node died."
            ) from None
        if isinstance(result, HostInfo) and result.node_id:
            host.where = f"node {result.hostname} (Ray node {result.node_id[:12]})"
        return result


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
