"""Fixed slots for every agent of one or more behaviors across several players.

Vector and multi-agent APIs (SB3's ``VecEnv``, Gymnasium's ``VectorEnv``, PettingZoo) need one
observation per agent at every step, while Unity agents report on their own schedule: between
decision boundaries a player may send only episode ends, and a new episode's agent may report
(under a new agent id, as Unity does) before or after the others. :class:`AgentSlots` turns
that into lock-step batches:

- each agent seen at reset owns one slot of its behavior; a slot whose episode ended is taken
  by the next unknown agent of the same behavior and player (preferring the same agent id);
- a step sends each slot's action to its agent if it requested a decision, then keeps
  exchanging with each player until every slot of that player has a fresh decision. Agents
  that report early are answered with their slot's latest action; an exchange that asks no
  decision, with an action-less one (a remote player's host makes those itself, saving the
  round trips: :mod:`unity_gym.remote_environment`). All players exchange in parallel;
- rewards accumulate per slot until the slot's next decision; an episode end sets
  ``terminated`` (or ``truncated`` when the player interrupted it at its step limit) and keeps
  the final observation, and the new episode's first decision becomes the slot's observation
  (its reward counts towards the slot's next step);
- a player with more agents than it started with, or with slots that stop reporting, is an
  error that says so;
- with a ``recover`` hook, a player that fails in a way a restart can cure (it exited, hung,
  dropped or garbled the link; see :mod:`unity_gym.restart_policy`) is replaced by the player
  the hook returns: its slots' interrupted episodes end as truncated (final observation = the
  last one seen), and the new player's agents take the slots with fresh episodes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps, TerminalSteps
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException, UnityException
from unity_gym.remote_environment import RemoteEnvironment
from unity_gym.restart_policy import RESTARTABLE_ERRORS

DEFAULT_MAX_EXCHANGES = 1000
# Action-less follow-up exchanges a remote player's host may make ahead of the learner (Unity's
# decision periods leave at most period - 1 exchanges of episode ends in a row).
HOST_FOLLOW_UPS = 8

# (player index, its failure) -> a started replacement player, or raise to give up.
RecoverPlayer = Callable[[int, UnityException], UnityEnvironment]


@dataclass
class SlotStep:
    """One lock-step batch over a behavior's slots (low-level layout: float32 per spec)."""

    obs: list[np.ndarray]
    rewards: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    # Unity's masks, True = action forbidden, (n_slots, sum(branches)); None without discrete.
    action_mask: np.ndarray | None
    # slot -> final observations of the episode that ended in this step
    final_obs: dict[int, list[np.ndarray]] = field(default_factory=dict)

    @property
    def dones(self) -> np.ndarray:
        return self.terminated | self.truncated


class _Table:
    """Per-behavior buffers over all slots."""

    def __init__(self, name: str, spec: BehaviorSpec, n: int) -> None:
        self.name = name
        self.spec = spec
        action = spec.action_spec
        self.obs = [np.zeros((n, *s.shape), np.float32) for s in spec.observation_specs]
        width = sum(action.discrete_branches)
        self.mask = np.zeros((n, width), bool) if action.discrete_size else None
        self.rewards = np.zeros(n, np.float32)
        self.carry = np.zeros(n, np.float32)
        self.terminated = np.zeros(n, bool)
        self.truncated = np.zeros(n, bool)
        self.ready = np.zeros(n, bool)
        self.continuous = np.zeros((n, action.continuous_size), np.float32)
        self.discrete = np.zeros((n, action.discrete_size), np.int32)
        self.final_obs: dict[int, list[np.ndarray]] = {}
        self.ended: set[int] = set()
        self.agent_of_slot = np.zeros(n, np.int64)

    def begin_step(self, actions: ActionTuple | None) -> None:
        if actions is not None:
            self.continuous[:] = actions.continuous
            self.discrete[:] = actions.discrete
        self.rewards[:] = self.carry
        self.carry[:] = 0.0
        self.terminated[:] = False
        self.truncated[:] = False
        self.ready[:] = False
        self.final_obs = {}
        self.ended = set()

    def result(self) -> SlotStep:
        return SlotStep(
            obs=[o.copy() for o in self.obs],
            rewards=self.rewards.copy(),
            terminated=self.terminated.copy(),
            truncated=self.truncated.copy(),
            action_mask=None if self.mask is None else self.mask.copy(),
            final_obs=dict(self.final_obs),
        )


@dataclass
class _Roster:
    """Which agent of one player holds which slot of one behavior."""

    slots: np.ndarray  # global slot indices of this behavior owned by this player
    agent_slot: dict[int, int] = field(default_factory=dict)
    previous_agent: dict[int, int] = field(default_factory=dict)  # slot -> last agent id
    free: list[int] = field(default_factory=list)


@dataclass
class _Worker:
    index: int
    env: UnityEnvironment
    rosters: dict[str, _Roster]
    exchanges: int = 0


class AgentSlots:
    """Lock-step view of ``behavior_names`` over ``envs`` (see the module docstring)."""

    def __init__(
        self,
        envs: Sequence[UnityEnvironment],
        behavior_names: Sequence[str],
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
        recover: RecoverPlayer | None = None,
    ) -> None:
        self.envs = list(envs)
        self.behavior_names = list(behavior_names)
        self.max_exchanges = max_exchanges
        self.recover = recover
        self._workers: list[_Worker] = []
        self._tables: dict[str, _Table] = {}

    # -- public -------------------------------------------------------------------------

    @property
    def specs(self) -> dict[str, BehaviorSpec]:
        return {name: table.spec for name, table in self._tables.items()}

    def num_slots(self, behavior: str) -> int:
        return len(self._tables[behavior].rewards)

    def worker_of_slot(self, behavior: str, slot: int) -> int:
        for index, worker in enumerate(self._workers):
            if slot in worker.rosters[behavior].slots:
                return index
        raise IndexError(f"slot {slot} of {behavior!r} out of range")

    def agent_id(self, behavior: str, slot: int) -> int:
        """The Unity agent id currently holding ``slot``."""
        return int(self._tables[behavior].agent_of_slot[slot])

    def reset(self) -> dict[str, SlotStep]:
        """Reset every player and (re)assign one slot per agent requesting a decision."""
        for index in range(len(self.envs)):
            while True:
                try:
                    self.envs[index].reset()
                    break
                except RESTARTABLE_ERRORS as error:
                    self.envs[index] = self._replacement(index, error)
        for env in self.envs:
            _follow_up_on_host(env)
        counts = dict.fromkeys(self.behavior_names, 0)
        self._workers = []
        specs: dict[str, BehaviorSpec] = {}
        for index, env in enumerate(self.envs):
            rosters = {}
            for name in self.behavior_names:
                specs[name] = self._spec(env, index, name)
                decisions, _ = env.get_steps(name)
                if len(decisions) == 0:
                    raise UnityEnvironmentException(
                        f"No agent of behavior {name!r} requested a decision after worker "
                        f"{index}'s reset; vector and multi-agent environments need every agent "
                        "to request one at reset (Unity does unless decisions are requested "
                        "manually)."
                    )
                rosters[name] = _Roster(np.arange(counts[name], counts[name] + len(decisions)))
                counts[name] += len(decisions)
            self._workers.append(_Worker(index, env, rosters))
        self._tables = {name: _Table(name, specs[name], counts[name]) for name in counts}
        for worker in self._workers:
            for name, roster in worker.rosters.items():
                agents = worker.env.get_steps(name)[0].agent_id.tolist()
                for slot, agent in zip(roster.slots.tolist(), agents, strict=True):
                    roster.agent_slot[agent] = slot
                    roster.previous_agent[slot] = agent
                self._record_decisions(worker, name, worker.env.get_steps(name)[0])
        return {name: table.result() for name, table in self._tables.items()}

    def step(self, actions: Mapping[str, ActionTuple]) -> dict[str, SlotStep]:
        """Give each slot its action and collect the next decision of every slot."""
        for name, table in self._tables.items():
            table.begin_step(actions.get(name))
        pending = []
        for worker in self._workers:
            worker.exchanges = 0
            if self._send(worker):
                pending.append(worker)
        while pending:
            still = []
            for worker in pending:
                try:
                    worker.env.step_wait()
                except RESTARTABLE_ERRORS as error:
                    self._replace(worker, error)
                    continue
                for name in worker.rosters:
                    decisions, terminals = worker.env.get_steps(name)
                    self._record_terminals(worker, name, terminals)
                    self._record_decisions(worker, name, decisions)
                if self._worker_ready(worker):
                    continue
                worker.exchanges += 1
                if worker.exchanges >= self.max_exchanges:
                    self._raise_stalled(worker)
                if self._send(worker):
                    still.append(worker)
            pending = still
        return {name: table.result() for name, table in self._tables.items()}

    # -- internals ----------------------------------------------------------------------

    @staticmethod
    def _spec(env: UnityEnvironment, index: int, name: str) -> BehaviorSpec:
        if name not in env.behavior_specs:
            known = ", ".join(env.behavior_specs) or "none"
            raise UnityEnvironmentException(
                f"Worker {index} has no behavior {name!r} after reset (it has: {known}). Pick "
                "one of those behaviors."
            )
        return env.behavior_specs[name]

    def _worker_ready(self, worker: _Worker) -> bool:
        return all(
            self._tables[name].ready[roster.slots].all() for name, roster in worker.rosters.items()
        )

    def _send(self, worker: _Worker) -> bool:
        """Answer the agents that requested a decision with their slots' latest actions.

        False when the player failed and was replaced (its slots are ready then).
        """
        for name, roster in worker.rosters.items():
            decisions, _ = worker.env.get_steps(name)
            if len(decisions):
                table = self._tables[name]
                rows = [roster.agent_slot[a] for a in decisions.agent_id.tolist()]
                worker.env.set_actions(
                    name, ActionTuple(table.continuous[rows], table.discrete[rows])
                )
        try:
            worker.env.step_async()
        except RESTARTABLE_ERRORS as error:
            self._replace(worker, error)
            return False
        return True

    def _replacement(self, index: int, error: UnityException) -> UnityEnvironment:
        """A started player in place of failed player ``index`` (the hook's), or ``error``."""
        if self.recover is None:
            raise error
        return self.recover(index, error)

    def _replace(self, worker: _Worker, error: UnityException) -> None:
        """Swap a failed player for a new one: interrupted episodes end as truncated, the new
        player's agents take the slots with fresh episodes (their first decisions)."""
        env = self._replacement(worker.index, error)
        self.envs[worker.index] = worker.env = env
        while True:
            try:
                env.reset()
                break
            except RESTARTABLE_ERRORS as again:
                env = self._replacement(worker.index, again)
                self.envs[worker.index] = worker.env = env
        _follow_up_on_host(env)
        for name, roster in worker.rosters.items():
            table = self._tables[name]
            if self._spec(env, worker.index, name) != table.spec:
                raise UnityEnvironmentException(
                    f"Worker {worker.index} restarted with another spec for behavior {name!r} "
                    f"({self._spec(env, worker.index, name)} instead of {table.spec})."
                )
            decisions, _ = env.get_steps(name)
            if len(decisions) != len(roster.slots):
                raise UnityEnvironmentException(
                    f"Worker {worker.index} restarted with {len(decisions)} agents of behavior "
                    f"{name!r} instead of {len(roster.slots)}; a restarted player must bring the "
                    "same agents back."
                )
            for slot in roster.slots.tolist():
                if slot not in table.ended:
                    table.truncated[slot] = True
                    table.terminated[slot] = False
                    table.final_obs[slot] = [o[slot].copy() for o in table.obs]
                    table.ended.add(slot)
                table.ready[slot] = False
            roster.agent_slot = dict(
                zip(decisions.agent_id.tolist(), roster.slots.tolist(), strict=True)
            )
            roster.previous_agent = {slot: agent for agent, slot in roster.agent_slot.items()}
            roster.free = []
            self._record_decisions(worker, name, decisions)

    def _record_terminals(self, worker: _Worker, name: str, terminals: TerminalSteps) -> None:
        table, roster = self._tables[name], worker.rosters[name]
        for row, agent in enumerate(terminals.agent_id.tolist()):
            slot = roster.agent_slot.pop(agent, None)
            if slot is None:
                raise UnityEnvironmentException(
                    f"Agent {agent} of behavior {name!r} ended an episode without ever "
                    "requesting a decision: an agent was added after reset. Vector and "
                    "multi-agent environments keep one slot per agent; keep the number of "
                    "agents fixed."
                )
            table.rewards[slot] += terminals.reward[row]
            interrupted = bool(terminals.interrupted[row])
            table.truncated[slot] = interrupted
            table.terminated[slot] = not interrupted
            table.final_obs[slot] = [o[row].copy() for o in terminals.obs]
            table.ready[slot] = False
            table.ended.add(slot)
            roster.free.append(slot)

    def _take_free_slot(self, roster: _Roster, name: str, agent: int) -> int:
        if not roster.free:
            raise UnityEnvironmentException(
                f"Behavior {name!r} now has more agents requesting decisions in one player "
                f"than the {len(roster.slots)} it had at reset (new agent id {agent}). Vector "
                "and multi-agent environments keep one slot per agent: keep the number of "
                "agents fixed, or reset after changing it."
            )
        for i, slot in enumerate(roster.free):
            if roster.previous_agent.get(slot) == agent:
                return roster.free.pop(i)
        return roster.free.pop(0)

    def _record_decisions(self, worker: _Worker, name: str, decisions: DecisionSteps) -> None:
        if len(decisions) == 0:
            return
        table, roster = self._tables[name], worker.rosters[name]
        rows = []
        for agent in decisions.agent_id.tolist():
            slot = roster.agent_slot.get(agent)
            if slot is None:
                slot = self._take_free_slot(roster, name, agent)
                roster.agent_slot[agent] = slot
                roster.previous_agent[slot] = agent
            rows.append(slot)
        slots = np.asarray(rows)
        table.agent_of_slot[slots] = decisions.agent_id
        new_episode = np.fromiter((s in table.ended for s in rows), bool, len(rows))
        # A new episode's first reward belongs to its next step, not to the ended episode.
        np.add.at(table.carry, slots[new_episode], decisions.reward[new_episode])
        np.add.at(table.rewards, slots[~new_episode], decisions.reward[~new_episode])
        for buffer, batch in zip(table.obs, decisions.obs, strict=True):
            buffer[slots] = batch
        if table.mask is not None and decisions.action_mask is not None:
            table.mask[slots] = np.concatenate(decisions.action_mask, axis=1)
        table.ready[slots] = True

    def _raise_stalled(self, worker: _Worker) -> None:
        waiting = {
            name: roster.slots[~self._tables[name].ready[roster.slots]].tolist()
            for name, roster in worker.rosters.items()
        }
        described = "; ".join(f"{name!r} slots {slots}" for name, slots in waiting.items() if slots)
        raise UnityEnvironmentException(
            f"No decision request in {self.max_exchanges} exchanges from: {described}. Their "
            "agents were removed or stopped requesting decisions; vector and multi-agent "
            "environments need every agent to keep requesting decisions (raise max_exchanges "
            "if respawns are just slow)."
        )


def _follow_up_on_host(env: UnityEnvironment) -> None:
    """Let a remote player's host make the action-less follow-ups :meth:`AgentSlots.step`
    would ask for (after an exchange that asks no decision) without waiting for them."""
    if isinstance(env, RemoteEnvironment):
        env.run_ahead = HOST_FOLLOW_UPS
