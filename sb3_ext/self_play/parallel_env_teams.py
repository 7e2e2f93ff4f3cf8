"""Any PettingZoo ``ParallelEnv`` as a :class:`~sb3_ext.self_play.team_vec_env.TeamGame`.

Agents are grouped into teams by ``team_of`` (default: for ``UnityParallelEnv``'s names,
``"Tennis?team=1?agent_id=3"`` -> ``"Tennis?team=1"``; for any other name, each agent is its
own team, as PettingZoo's two-player games have it). A team's agents are the ones present at
the first reset, in that order, and every later game must have them again.

A vector environment needs every agent at every step, while a PettingZoo game lets finished
agents leave until the game is over. So here a game ends for everyone as soon as one agent's
episode ends: the agents still playing are cut short (truncated, their observation after the
step being final), and the environment is reset at once. In two-player games where both
players' episodes end together (Unity's Tennis with one area, most PettingZoo classics) this
changes nothing. Observations of the ``{"observation", "action_mask"}`` form (PettingZoo's
masking convention, ``UnityParallelEnv``'s for discrete actions) are split: the model sees
``observation``, the mask goes to :class:`~sb3_ext.self_play.team_vec_env.TeamBatch`'s
``action_masks``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from pettingzoo import ParallelEnv

from sb3_ext.self_play.team_vec_env import TERMINAL_KEY, TRUNCATED_KEY, TeamBatch

AGENT_TAG = "?agent_id="  # UnityParallelEnv's agent names: "<behavior>?team=<t>?agent_id=<id>"
OBSERVATION_KEY, ACTION_MASK_KEY = "observation", "action_mask"


def default_team_of(agent: str) -> str:
    """``UnityParallelEnv``'s team prefix, or the agent's own name for other games."""
    return agent.split(AGENT_TAG, 1)[0] if AGENT_TAG in agent else agent


class ParallelEnvTeams:
    """A PettingZoo game's agents in teams, stepped together (see the module docstring).

    :param env: the game; it is reset by :meth:`reset` and closed by :meth:`close`.
    :param team_of: agent name -> team name.
    :param seed: passed to the game's first reset.
    """

    def __init__(
        self,
        env: ParallelEnv[Any, Any, Any],
        team_of: Callable[[str], str] = default_team_of,
        seed: int | None = None,
    ) -> None:
        self.env = env
        self.team_of = team_of
        self.seed = seed
        self.members: dict[str, list[str]] = {}
        for agent in env.possible_agents:
            self.members.setdefault(team_of(agent), []).append(agent)
        self._obs: dict[str, Any] = {}
        self._restart = False

    @property
    def teams(self) -> Sequence[str]:
        return list(self.members)

    def observation_space(self, team: str) -> spaces.Space[Any]:
        space = self.env.observation_space(self.members[team][0])
        return _observation_part(space)

    def action_space(self, team: str) -> spaces.Space[Any]:
        return self.env.action_space(self.members[team][0])

    def num_agents(self, team: str) -> int:
        return len(self.members[team])

    def reset(self) -> dict[str, TeamBatch]:
        self._obs, _ = self.env.reset(seed=self.seed)
        self.seed = None  # later resets continue the game's own random sequence
        self._check_agents()
        return {team: self._batch(team, {}, {}, {}) for team in self.members}

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, TeamBatch]:
        joint = {
            agent: _action(actions[team][i])
            for team, agents in self.members.items()
            for i, agent in enumerate(agents)
            if agent in self.env.agents
        }
        obs, rewards, terminated, truncated, _ = self.env.step(joint)
        over = self._restart or any(terminated.values()) or any(truncated.values())
        self._restart = False
        final = {**self._obs, **obs}
        if not over:
            self._obs = final
            return {t: self._batch(t, rewards, {}, {}) for t in self.members}
        ended = {
            agent: bool(terminated.get(agent, False))
            for agents in self.members.values()
            for agent in agents
        }
        self._obs, _ = self.env.reset()
        self._check_agents()
        return {t: self._batch(t, rewards, ended, final) for t in self.members}

    def restart(self) -> None:
        self._restart = True

    def close(self) -> None:
        self.env.close()

    def _check_agents(self) -> None:
        missing = [a for agents in self.members.values() for a in agents if a not in self._obs]
        if missing:
            raise ValueError(
                f"The game's reset did not bring back agents {missing}; self-play needs the "
                "same agents in every game (each team's agents fill fixed places in the batch)."
            )

    def _batch(
        self,
        team: str,
        rewards: Mapping[str, float],
        ended: Mapping[str, bool],
        final: Mapping[str, Any],
    ) -> TeamBatch:
        agents = self.members[team]
        observations = [self._obs[a] for a in agents]
        masks = None
        if isinstance(observations[0], dict) and ACTION_MASK_KEY in observations[0]:
            masks = np.stack([np.asarray(o[ACTION_MASK_KEY]).astype(bool) for o in observations])
            observations = [o[OBSERVATION_KEY] for o in observations]
        infos: list[dict[str, Any]] = [{} for _ in agents]
        if ended:
            for info, agent in zip(infos, agents, strict=True):
                last = final[agent]
                info[TERMINAL_KEY] = last[OBSERVATION_KEY] if masks is not None else last
                info[TRUNCATED_KEY] = not ended[agent]
        return TeamBatch(
            _stack(observations),
            np.array([float(rewards.get(a, 0.0)) for a in agents], dtype=np.float32),
            np.full(len(agents), bool(ended)),
            infos,
            masks,
        )


def _observation_part(space: spaces.Space[Any]) -> spaces.Space[Any]:
    if isinstance(space, spaces.Dict) and set(space.spaces) == {OBSERVATION_KEY, ACTION_MASK_KEY}:
        return space.spaces[OBSERVATION_KEY]
    return space


def _stack(observations: list[Any]) -> Any:
    if isinstance(observations[0], dict):
        return {key: np.stack([o[key] for o in observations]) for key in observations[0]}
    return np.stack([np.asarray(o) for o in observations])


def _action(action: np.ndarray) -> Any:
    value = np.asarray(action)
    return value.item() if value.ndim == 0 else value
