"""Every behavior of a scene, each driven by its own learner, stepping the same players.

A Unity scene with several behaviors (Tennis's two teams, a striker and a goalie) moves in lock
step: one exchange carries the actions of every behavior. Trainers that each own one behavior
(one SB3 model per behavior, each in its own thread, as ``unity-sb3 learn`` runs them) meet at
:meth:`LockstepBehaviors.submit`: the last behavior to hand in its actions steps the players
for everyone, and each gets its own :class:`~unity_gym.agent_slots.SlotStep` back.

A behavior whose learner has finished is *retired* with a policy that keeps acting for it, so
the others go on training against it (as mlagents-learn keeps running finished behaviors).
An error in one learner, or in the players, reaches every waiting learner instead of leaving
them blocked.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, AgentSlots, SlotStep
from unity_gym.base_env import ActionTuple, BehaviorSpec
from unity_gym.behavior_group import BehaviorBatches
from unity_gym.env_group import WorkerSettings, choose_behavior
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.player_set import PlayerSet
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler
from unity_gym.spaces import SpaceConverter, VisualDtype

Autopilot = Callable[[SlotStep], ActionTuple]


class LockstepBehaviors:
    """Players whose behaviors are stepped together by independent learners.

    :param settings: how to start each player.
    :param n_players: number of player processes.
    :param behavior_names: behaviors to expose (full names or names without the team); None
        means every behavior the scene announces at its first reset.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        n_players: int,
        behavior_names: Sequence[str] | None = None,
        visual_dtype: VisualDtype = "uint8",
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    ) -> None:
        self.visual_dtype = visual_dtype

        def choose(env: UnityEnvironment) -> list[str]:
            if behavior_names is None:
                return list(env.behavior_specs)
            return [choose_behavior(env, name) for name in behavior_names]

        self.players = PlayerSet(settings, n_players, choose, max_exchanges)
        self.behavior_names: list[str] = self.players.behavior_names
        # Held while the players step; hold it to read side channels fed by the exchanges.
        self.lock = threading.Condition()
        self._pending: dict[str, ActionTuple] = {}
        self._autopilots: dict[str, Autopilot] = {}
        self._round = 0
        self._reset_requested = False
        self._error: BaseException | None = None
        # Called (holding :attr:`lock`) after every joint step, e.g. to drain stats channels.
        self.step_listeners: list[Callable[[], None]] = []

    @property
    def envs(self) -> list[UnityEnvironment]:
        """One low-level environment per player (a restarted player's replaces it)."""
        return self.players.envs

    @property
    def slots(self) -> AgentSlots:
        return self.players.slots

    @property
    def last(self) -> dict[str, SlotStep]:
        return self.players.last

    @property
    def specs(self) -> dict[str, BehaviorSpec]:
        return self.slots.specs

    def behavior(self, name: str) -> SharedBehavior:
        """The batches of one behavior, for an adapter such as ``UnityVecEnv.from_batches``."""
        return SharedBehavior(self, choose_behavior(self.envs[0], name))

    def submit(self, name: str, actions: ActionTuple) -> SlotStep:
        """Hand in ``name``'s actions; returns its next batch once every behavior has acted."""
        return self.submit_many({name: actions})[name]

    def submit_many(self, actions: Mapping[str, ActionTuple]) -> dict[str, SlotStep]:
        """Hand in the actions of several behaviors one learner drives (a model playing both
        teams of Tennis); returns their next batches once every behavior has acted."""
        with self.lock:
            self._raise_if_failed()
            self._pending.update(actions)
            this_round = self._round
            if self._everyone_submitted():
                self._advance()
            else:
                while self._round == this_round and self._error is None:
                    self.lock.wait()
                self._raise_if_failed()
            return {name: self.last[name] for name in actions}

    def request_reset(self) -> None:
        """Make the next joint step a Unity reset of every player instead (a self-play team
        change): the actions handed in for it are dropped, and every slot's episode ends
        there, truncated, with the observation before the reset as its final one."""
        with self.lock:
            self._reset_requested = True

    def set_environment_parameters(
        self, values: Mapping[str, float | ParameterSampler], reset: bool = False
    ) -> None:
        """Send environment parameters to every player with the next joint step (a lesson
        change); with ``reset``, that step is a full reset instead (see :meth:`request_reset`)."""
        with self.lock:
            self.players.set_environment_parameters(values)
            if reset:
                self._reset_requested = True

    def retire(self, name: str, autopilot: Autopilot) -> None:
        """``name``'s learner stops; from now on ``autopilot`` acts for it.

        Never raises: if the step it completes fails, the learners waiting for that step get
        the error (the retiring learner has nothing left to do with it).
        """
        with self.lock:
            self._autopilots[name] = autopilot
            if self._error is None and self._pending and self._everyone_submitted():
                with contextlib.suppress(BaseException):
                    self._advance()

    def fail(self, error: BaseException) -> None:
        """A learner failed: wake every waiting learner with ``error``."""
        with self.lock:
            if self._error is None:
                self._error = error
            self.lock.notify_all()

    def close(self) -> None:
        """End every player; safe to call twice."""
        self.players.close()

    def _everyone_submitted(self) -> bool:
        return all(n in self._pending or n in self._autopilots for n in self.behavior_names)

    def _advance(self) -> None:
        """Step the players for everyone (holding :attr:`lock`). Whatever fails on the way (an
        autopilot, the players, a step listener) fails every learner instead of leaving the
        others waiting."""
        try:
            actions = dict(self._pending)
            for name, autopilot in self._autopilots.items():
                if name not in actions:
                    actions[name] = autopilot(self.last[name])
            if self._reset_requested:
                self._reset_requested = False
                self._reset_all()
            else:
                self.players.step(actions)
            self._pending.clear()
            self._round += 1
            for listener in self.step_listeners:
                listener()
        except BaseException as err:
            if self._error is None:
                self._error = err
            raise
        finally:
            self.lock.notify_all()

    def _reset_all(self) -> None:
        """Reset every player; report it as every episode cut short (see request_reset).

        As mlagents-learn does before a full reset, every environment parameter is sent again,
        so each sampler's draws restart from its seed."""
        before = self.last
        self.players.set_environment_parameters({}, resend=True)
        after = self.players.reset()
        for name, step in after.items():
            old = before[name]
            n = len(step.rewards)
            after[name] = replace(
                step,
                rewards=np.zeros(n, dtype=np.float32),
                terminated=np.zeros(n, dtype=bool),
                truncated=np.ones(n, dtype=bool),
                final_obs={slot: [o[slot] for o in old.obs] for slot in range(len(old.rewards))},
            )
        self.players.last = after

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise UnityEnvironmentException(
                f"Stopped because another behavior's learner or the players failed: {self._error}"
            ) from self._error


class SharedBehavior(BehaviorBatches):
    """One behavior of :class:`LockstepBehaviors` with the single-behavior adapter interface.

    ``reset`` does not restart anything: the players were reset when they started and keep
    running, so it returns the behavior's current observations (learners call it once, when
    they start).
    """

    def __init__(self, lockstep: LockstepBehaviors, name: str) -> None:
        self.lockstep = lockstep
        self.behavior_name = name
        spec = lockstep.specs[name]
        self.converter = SpaceConverter.for_behavior(spec, lockstep.visual_dtype)

    @property
    def envs(self) -> list[UnityEnvironment]:
        return self.lockstep.envs

    @property
    def last(self) -> SlotStep:
        return self.lockstep.last[self.behavior_name]

    @property
    def num_slots(self) -> int:
        return self.lockstep.slots.num_slots(self.behavior_name)

    def env_of_slot(self, slot: int) -> UnityEnvironment:
        return self.lockstep.players.env_of_slot(self.behavior_name, slot)

    def reset(self, seed: int | None = None) -> SlotStep:
        return self.last

    def step(self, actions: Any) -> SlotStep:
        return self.lockstep.submit(self.behavior_name, self.converter.actions(actions))

    def close(self) -> None:
        """The players belong to the :class:`LockstepBehaviors`; it closes them."""

    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        self.lockstep.set_environment_parameters(values)
