"""A Unity scene's teams (``Name?team=N`` behaviors) as a :class:`TeamGame`.

Built on :class:`~unity_gym.lockstep_behaviors.LockstepBehaviors`, so the scene may run in
several players (each agent one slot, finished episodes restarting on their own, as in every
vector adapter here) and the other side of an asymmetric game may be driven by another model
in another thread: each :class:`LockstepTeams` hands in the actions of its own behaviors and
the players step once everyone has. A restart is a Unity reset of every player at the next
joint step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_ext.self_play.team_vec_env import TeamBatch
from unity_gym.agent_slots import SlotStep
from unity_gym.lockstep_behaviors import LockstepBehaviors, SharedBehavior


class LockstepTeams:
    """``behaviors`` of ``lockstep``'s players, one team each (full names, in rotation order).

    The players belong to ``lockstep``: :meth:`close` leaves them running for the others.
    """

    def __init__(self, lockstep: LockstepBehaviors, behaviors: Sequence[str]) -> None:
        self.lockstep = lockstep
        self.shared: dict[str, SharedBehavior] = {}
        for name in behaviors:
            behavior = lockstep.behavior(name)
            self.shared[behavior.behavior_name] = behavior

    @property
    def teams(self) -> Sequence[str]:
        return list(self.shared)

    def observation_space(self, team: str) -> spaces.Space[Any]:
        return self.shared[team].converter.observation_space

    def action_space(self, team: str) -> spaces.Space[Any]:
        return self.shared[team].converter.action_space

    def num_agents(self, team: str) -> int:
        return self.shared[team].num_slots

    def reset(self) -> dict[str, TeamBatch]:
        """The current observations (the players were reset when they started)."""
        return {team: self._batch(team, shared.last) for team, shared in self.shared.items()}

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, TeamBatch]:
        converted = {team: self.shared[team].converter.actions(a) for team, a in actions.items()}
        steps = self.lockstep.submit_many(converted)
        return {team: self._batch(team, step) for team, step in steps.items()}

    def restart(self) -> None:
        self.lockstep.request_reset()

    def close(self) -> None:
        """The players are ``lockstep``'s to close."""

    def _batch(self, team: str, step: SlotStep) -> TeamBatch:
        shared = self.shared[team]
        masks = None
        if shared.converter.behavior_spec.action_spec.discrete_size:
            masks = shared.action_masks()
        return TeamBatch(
            shared.observations(step),
            step.rewards,
            step.dones,
            shared.step_infos(step),
            masks,
        )
