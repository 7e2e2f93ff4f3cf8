"""Fixed slots for every agent of one behavior across several players.

Vector APIs (SB3's ``VecEnv``, Gymnasium's ``VectorEnv``) need one observation per slot at every
step, while Unity agents report on their own schedule: between decision boundaries a player may
send only episode ends, and a new episode's agent may report (under a new agent id, as Unity
does) before or after the others. :class:`BehaviorSlots` turns that into lock-step batches:

- each agent seen at reset owns one slot; a slot whose episode ended is taken by the next
  unknown agent of the same player (preferring the same agent id);
- a step sends the slot actions to the agents that requested a decision, then keeps exchanging
  with each player until every slot of that player has a fresh decision. Agents that report
  early are answered with their slot's latest action. All players exchange in parallel;
- rewards accumulate per slot until the slot's next decision; an episode end sets
  ``terminated`` (or ``truncated`` when the player interrupted it at its step limit) and keeps
  the final observation, and the new episode's first decision becomes the slot's observation;
- a player with more agents than it started with, or with slots that stop reporting, is an
  error that says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps, TerminalSteps
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException

DEFAULT_MAX_EXCHANGES = 1000


@dataclass
class SlotStep:
    """One lock-step batch over all slots (low-level layout: float32 observations per spec)."""

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


@dataclass
class _Worker:
    env: UnityEnvironment
    slots: np.ndarray  # global slot indices owned by this player
    agent_slot: dict[int, int] = field(default_factory=dict)
    previous_agent: dict[int, int] = field(default_factory=dict)  # slot -> last agent id
    free: list[int] = field(default_factory=list)
    exchanges: int = 0


class BehaviorSlots:
    """Lock-step view of one behavior over ``envs`` (see the module docstring)."""

    def __init__(
        self,
        envs: Sequence[UnityEnvironment],
        behavior_name: str,
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    ) -> None:
        self.envs = list(envs)
        self.behavior_name = behavior_name
        self.max_exchanges = max_exchanges
        self._workers: list[_Worker] = []
        self.spec: BehaviorSpec | None = None
        self.num_slots = 0
        self._final_obs: dict[int, list[np.ndarray]] = {}

    # -- public -------------------------------------------------------------------------

    def worker_of_slot(self, slot: int) -> int:
        for index, worker in enumerate(self._workers):
            if worker.slots[0] <= slot <= worker.slots[-1]:
                return index
        raise IndexError(f"slot {slot} out of range 0..{self.num_slots - 1}")

    def reset(self) -> SlotStep:
        """Reset every player and (re)assign one slot per agent requesting a decision."""
        for env in self.envs:
            env.reset()
        self._workers = []
        offset = 0
        for index, env in enumerate(self.envs):
            if self.behavior_name not in env.behavior_specs:
                known = ", ".join(env.behavior_specs) or "none"
                raise UnityEnvironmentException(
                    f"Worker {index} has no behavior {self.behavior_name!r} after reset (it has: "
                    f"{known}). Pick one of those behaviors."
                )
            self.spec = env.behavior_specs[self.behavior_name]
            decisions, _ = env.get_steps(self.behavior_name)
            if len(decisions) == 0:
                raise UnityEnvironmentException(
                    f"No agent of behavior {self.behavior_name!r} requested a decision after "
                    f"worker {index}'s reset; vector environments need every agent to request "
                    "one at reset (Unity does this unless decisions are requested manually)."
                )
            slots = np.arange(offset, offset + len(decisions))
            worker = _Worker(env, slots)
            for slot, agent in zip(slots.tolist(), decisions.agent_id.tolist(), strict=True):
                worker.agent_slot[agent] = slot
                worker.previous_agent[slot] = agent
            self._workers.append(worker)
            offset += len(decisions)
        self.num_slots = offset
        self._allocate()
        for worker in self._workers:
            self._record_decisions(worker, worker.env.get_steps(self.behavior_name)[0], set())
        return self._result(set())

    def step(self, actions: ActionTuple) -> SlotStep:
        """Give each slot its action and collect the next decision of every slot."""
        self._last_continuous[:] = actions.continuous
        self._last_discrete[:] = actions.discrete
        self._rewards[:] = self._carry
        self._carry[:] = 0.0
        self._terminated[:] = False
        self._truncated[:] = False
        self._ready[:] = False
        self._final_obs.clear()
        ended: set[int] = set()
        pending = list(self._workers)
        for worker in pending:
            worker.exchanges = 0
            self._send(worker)
        while pending:
            still = []
            for worker in pending:
                worker.env.step_wait()
                decisions, terminals = worker.env.get_steps(self.behavior_name)
                self._record_terminals(worker, terminals, ended)
                self._record_decisions(worker, decisions, ended)
                if self._ready[worker.slots].all():
                    continue
                worker.exchanges += 1
                if worker.exchanges >= self.max_exchanges:
                    self._raise_stalled(worker)
                self._send(worker)
                still.append(worker)
            pending = still
        return self._result(ended)

    # -- internals ----------------------------------------------------------------------

    def _allocate(self) -> None:
        assert self.spec is not None
        n = self.num_slots
        action = self.spec.action_spec
        self._obs = [np.zeros((n, *s.shape), np.float32) for s in self.spec.observation_specs]
        width = sum(action.discrete_branches)
        self._mask = np.zeros((n, width), bool) if action.discrete_size else None
        self._rewards = np.zeros(n, np.float32)
        self._carry = np.zeros(n, np.float32)
        self._terminated = np.zeros(n, bool)
        self._truncated = np.zeros(n, bool)
        self._ready = np.zeros(n, bool)
        self._last_continuous = np.zeros((n, action.continuous_size), np.float32)
        self._last_discrete = np.zeros((n, action.discrete_size), np.int32)
        self._final_obs.clear()

    def _send(self, worker: _Worker) -> None:
        """Answer the agents that requested a decision with their slots' latest actions."""
        decisions, _ = worker.env.get_steps(self.behavior_name)
        if len(decisions):
            rows = [worker.agent_slot[a] for a in decisions.agent_id.tolist()]
            worker.env.set_actions(
                self.behavior_name,
                ActionTuple(self._last_continuous[rows], self._last_discrete[rows]),
            )
        worker.env.step_async()

    def _record_terminals(self, worker: _Worker, terminals: TerminalSteps, ended: set[int]) -> None:
        for row, agent in enumerate(terminals.agent_id.tolist()):
            slot = worker.agent_slot.pop(agent, None)
            if slot is None:
                raise UnityEnvironmentException(
                    f"Agent {agent} of behavior {self.behavior_name!r} ended an episode without "
                    "ever requesting a decision: an agent was added after reset. Vector "
                    "environments keep one slot per agent; keep the number of agents fixed."
                )
            self._rewards[slot] += terminals.reward[row]
            interrupted = bool(terminals.interrupted[row])
            self._truncated[slot] = interrupted
            self._terminated[slot] = not interrupted
            self._final_obs[slot] = [o[row].copy() for o in terminals.obs]
            self._ready[slot] = False
            worker.free.append(slot)
            ended.add(slot)

    def _take_free_slot(self, worker: _Worker, agent: int) -> int:
        if not worker.free:
            raise UnityEnvironmentException(
                f"Behavior {self.behavior_name!r} now has more agents requesting decisions in "
                f"one player than the {len(worker.slots)} it had at reset (new agent id "
                f"{agent}). Vector environments keep one slot per agent: keep the number of "
                "agents fixed, or reset after changing it."
            )
        for i, slot in enumerate(worker.free):
            if worker.previous_agent.get(slot) == agent:
                return worker.free.pop(i)
        return worker.free.pop(0)

    def _record_decisions(self, worker: _Worker, decisions: DecisionSteps, ended: set[int]) -> None:
        if len(decisions) == 0:
            return
        rows = []
        for agent in decisions.agent_id.tolist():
            slot = worker.agent_slot.get(agent)
            if slot is None:
                slot = self._take_free_slot(worker, agent)
                worker.agent_slot[agent] = slot
                worker.previous_agent[slot] = agent
            rows.append(slot)
        slots = np.asarray(rows)
        new_episode = np.fromiter((s in ended for s in rows), bool, len(rows))
        # A new episode's first reward belongs to its next step, not to the ended episode.
        np.add.at(self._carry, slots[new_episode], decisions.reward[new_episode])
        np.add.at(self._rewards, slots[~new_episode], decisions.reward[~new_episode])
        for buffer, batch in zip(self._obs, decisions.obs, strict=True):
            buffer[slots] = batch
        if self._mask is not None and decisions.action_mask is not None:
            self._mask[slots] = np.concatenate(decisions.action_mask, axis=1)
        self._ready[slots] = True

    def _raise_stalled(self, worker: _Worker) -> None:
        waiting = worker.slots[~self._ready[worker.slots]].tolist()
        raise UnityEnvironmentException(
            f"Slots {waiting} of behavior {self.behavior_name!r} received no decision request "
            f"in {self.max_exchanges} exchanges with their player: their agents were removed "
            "or stopped requesting decisions. Vector environments need every agent to keep "
            "requesting decisions (raise max_exchanges if respawns are just slow)."
        )

    def _result(self, ended: set[int]) -> SlotStep:
        return SlotStep(
            obs=[o.copy() for o in self._obs],
            rewards=self._rewards.copy(),
            terminated=self._terminated.copy(),
            truncated=self._truncated.copy(),
            action_mask=None if self._mask is None else self._mask.copy(),
            final_obs=dict(self._final_obs),
        )
