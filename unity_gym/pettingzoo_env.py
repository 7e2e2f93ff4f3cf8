"""PettingZoo adapters: every agent of a Unity scene's behaviors (teams) as one multi-agent game.

:class:`UnityParallelEnv` is a ``pettingzoo.ParallelEnv`` over one player (a Unity build or
``"builtin:NAME"``), built on :class:`~unity_gym.agent_slots.AgentSlots` with all the scene's
behaviors or a chosen subset; :class:`UnityAECEnv` is the same game turn by turn (PettingZoo's
``parallel_to_aec`` conversion). One PettingZoo step is one decision of every agent.

- Agent names are ``"<behavior base name>?team=<t>?agent_id=<id>"``: Unity writes the team
  into the behavior name (``Tennis?team=1``); a name without one gets ``team=0``. ``id`` is the
  Unity agent id holding the slot when the game starts, and ``possible_agents`` are the agents
  at :meth:`~UnityParallelEnv.reset`.
- Spaces come from :class:`~unity_gym.spaces.SpaceConverter` of the agent's behavior. For a
  behavior with discrete actions an observation is ``{"observation": obs, "action_mask": m}``
  with ``m`` an int8 array over all branches' actions, 1 = allowed (PettingZoo's convention).
- An agent whose Unity episode ends is terminated (or truncated, when the player's step limit
  interrupted it; ML-Agents' ``interrupted``), gets its final observation, and leaves
  ``agents``. The game is over when ``agents`` is empty. Unity has already restarted every
  agent by then, so the next ``reset()`` returns the new episodes' observations without a
  Unity reset; ``reset()`` during a game resets Unity.
- Until the game is over, a finished agent's slot lives on in Unity (its new episode begins at
  once) and is answered with the agent's last action; none of that belongs to any PettingZoo
  game. The same holds for a live agent missing from the actions given to ``step``.
- ``reset(seed=s)``: Unity seeds a player only at its handshake, so a seed restarts the player
  with it (the first ``reset`` reuses the player just opened when its seed matches);
  ``options`` are ignored. ``render()`` returns None, ``state()`` is not available, and
  ``close()`` ends the player.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import concatenate, create_empty_array
from pettingzoo import ParallelEnv
from pettingzoo.utils.conversions import parallel_to_aec_wrapper

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, SlotStep
from unity_gym.base_env import (
    ActionTuple,
    behavior_name_without_team,
    matching_behaviors,
    team_id,
)
from unity_gym.env_group import WorkerSettings
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.player_set import PlayerSet
from unity_gym.spaces import SpaceConverter, VisualDtype

TEAM_TAG = "?team="
AGENT_TAG = "?agent_id="
OBSERVATION_KEY = "observation"
ACTION_MASK_KEY = "action_mask"
# observations, rewards, terminations, truncations, infos: each by agent name
StepResult = tuple[
    dict[str, Any], dict[str, float], dict[str, bool], dict[str, bool], dict[str, dict[str, Any]]
]


def team_prefix(behavior_name: str) -> str:
    """``"<base>?team=<t>"`` for a behavior name, with ``team=0`` when it names no team."""
    return f"{behavior_name_without_team(behavior_name)}{TEAM_TAG}{team_id(behavior_name)}"


def agent_name(behavior_name: str, agent_id: int) -> str:
    """The PettingZoo name of Unity agent ``agent_id`` of ``behavior_name``."""
    return f"{team_prefix(behavior_name)}{AGENT_TAG}{agent_id}"


class _Behavior:
    """One behavior's spaces, conversions, and the latest action of each of its slots."""

    def __init__(self, name: str, converter: SpaceConverter, num_slots: int) -> None:
        self.name = name
        self.converter = converter
        action_spec = converter.behavior_spec.action_spec
        self.mask_width = sum(action_spec.discrete_branches)
        self.observation_space: spaces.Space[Any] = converter.observation_space
        if self.mask_width:
            self.observation_space = spaces.Dict(
                {
                    OBSERVATION_KEY: converter.observation_space,
                    ACTION_MASK_KEY: spaces.Box(0, 1, (self.mask_width,), np.int8),
                }
            )
        self.continuous = np.zeros((num_slots, action_spec.continuous_size), np.float32)
        self.discrete = np.zeros((num_slots, action_spec.discrete_size), np.int32)

    def set_actions(self, slots: list[int], actions: list[Any]) -> None:
        """Store the actions (action-space samples) of these slots."""
        space = self.converter.action_space
        out: Any = create_empty_array(space, len(actions))
        batch = concatenate(space, actions, out)
        converted = self.converter.actions(batch)
        self.continuous[slots] = converted.continuous
        self.discrete[slots] = converted.discrete

    def observations(self, step: SlotStep, slots: list[int], finals: bool = True) -> dict[int, Any]:
        """Each slot's observation in :attr:`observation_space`.

        With ``finals``, a slot whose episode ended in ``step`` gets that episode's final one.
        """
        batch = self.converter.observations(step.obs)
        allowed = None
        if self.mask_width:
            masks = None if step.action_mask is None else [step.action_mask]
            flat = self.converter.flat_action_masks(masks, len(step.rewards))
            allowed = flat.astype(np.int8)
        result = {}
        for slot in slots:
            final = step.final_obs.get(slot) if finals else None
            obs = _row(batch, slot) if final is None else self._single(final)
            if allowed is not None:
                obs = {OBSERVATION_KEY: obs, ACTION_MASK_KEY: allowed[slot]}
            result[slot] = obs
        return result

    def _single(self, obs: list[np.ndarray]) -> Any:
        return _row(self.converter.observations([o[None] for o in obs]), 0)


def _row(batch: Any, index: int) -> Any:
    if isinstance(batch, dict):
        return {key: value[index] for key, value in batch.items()}
    return batch[index]


class UnityParallelEnv(ParallelEnv[str, Any, Any]):
    """Every agent of a scene's behaviors in one player as a PettingZoo parallel game.

    Semantics in the module docstring.

    :param file_name: Unity build path or ``"builtin:NAME"`` (None = the Editor).
    :param behavior_names: behaviors to include; all the scene's behaviors (sorted) if None. A
        name without a team (``"Tennis"``) stands for every team of that behavior.
    :param visual_dtype: ``"uint8"`` images in [0, 255] or ``"float32"`` in [0, 1].
    :param max_exchanges: exchanges to wait for an agent's next decision before giving up.
    Other keyword arguments are those of :class:`unity_gym.env_group.WorkerSettings` (``seed``,
    ``base_port``, ``worker_id_start``, ``num_areas``, ``side_channels``, ...).
    """

    metadata = {"render_modes": [], "name": "unity_parallel_v0", "is_parallelizable": True}
    render_mode = None

    def __init__(
        self,
        file_name: str | None,
        behavior_names: Sequence[str] | None = None,
        *,
        visual_dtype: VisualDtype = "uint8",
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
        **worker_settings: Any,
    ) -> None:
        self._settings = WorkerSettings(file_name=file_name, **worker_settings)
        self._visual_dtype = visual_dtype
        self._players: PlayerSet | None = None
        self.agents: list[str] = []
        self.possible_agents: list[str] = []
        self._slot_of: dict[str, tuple[_Behavior, int]] = {}
        self._players = PlayerSet(
            self._settings,
            1,
            lambda env: self._choose(env, behavior_names),
            max_exchanges,
        )
        self._attach()

    # -- players ------------------------------------------------------------------------

    def _attach(self) -> None:
        """Take the just-opened players' behaviors; their reset waits for :meth:`reset`."""
        players = self._live()
        specs = players.specs
        self._behaviors = {
            name: _Behavior(
                name,
                SpaceConverter.for_behavior(specs[name], self._visual_dtype),
                players.slots.num_slots(name),
            )
            for name in players.behavior_names
        }
        self._by_prefix = {team_prefix(b): behavior for b, behavior in self._behaviors.items()}
        self._fresh_seed: int | None = self._settings.seed
        self._game_over = False
        self.possible_agents = list(self._assign())

    def _assign(self) -> dict[str, tuple[_Behavior, int]]:
        """Agent name -> (behavior, slot) for the agents holding the slots now."""
        slots = self._live().slots
        return {
            agent_name(name, slots.agent_id(name, slot)): (behavior, slot)
            for name, behavior in self._behaviors.items()
            for slot in range(slots.num_slots(name))
        }

    def _live(self) -> PlayerSet:
        if self._players is None:
            raise UnityEnvironmentException("The environment is closed.")
        return self._players

    @staticmethod
    def _choose(env: UnityEnvironment, behavior_names: Sequence[str] | None) -> list[str]:
        known = sorted(env.behavior_specs)
        wanted = known if behavior_names is None else list(behavior_names)
        missing = [n for n in wanted if not matching_behaviors(n, known)]
        names = list(dict.fromkeys(m for n in wanted for m in matching_behaviors(n, known)))
        if missing or not names:
            raise UnityEnvironmentException(
                f"Behaviors {missing} are not in this scene; its behaviors are: "
                f"{', '.join(known) or 'none'}."
                if missing
                else "behavior_names is empty: choose at least one behavior."
            )
        prefixes = [team_prefix(n) for n in names]
        if len(set(prefixes)) != len(prefixes):
            raise UnityEnvironmentException(
                f"Behaviors {names} give the same agent names (a name without a team is team 0); "
                "choose a subset with behavior_names."
            )
        return names

    def _restart(self, seed: int) -> None:
        """Unity seeds a player once, at its handshake: a new seed means a new player."""
        self._live().reseed(seed)
        self._attach()

    @property
    def unity_env(self) -> UnityEnvironment:
        """The low-level environment of the player."""
        return self._live().envs[0]

    @property
    def player_pid(self) -> int | None:
        return None if self._players is None else self._players.player_pids[0]

    @property
    def behavior_names(self) -> list[str]:
        return list(self._behaviors)

    # -- PettingZoo API -----------------------------------------------------------------

    def reset(
        self, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """Start a game; see the module docstring for when Unity resets or restarts."""
        seed = None if seed is None else int(seed)
        if self._fresh_seed is not None and seed in (None, self._fresh_seed):
            pass  # the player just opened: its reset is this game's start
        elif seed is not None:
            self._restart(seed)
        elif not self._game_over:
            self._live().reset()
        self._fresh_seed = None
        self._game_over = False
        self._slot_of = self._assign()
        self.agents = list(self._slot_of)
        self.possible_agents = list(self.agents)
        observations = self._observe(self.agents, finals=False)
        return observations, {agent: {} for agent in self.agents}

    def step(self, actions: Mapping[str, Any]) -> StepResult:
        """One decision of every live agent; finished agents leave :attr:`agents`."""
        if not self.agents:
            raise RuntimeError("The game is over (no agents left): call reset().")
        unknown = [agent for agent in actions if agent not in self._slot_of]
        if unknown:
            raise KeyError(f"Unknown agents {unknown}; this game's agents: {self.possible_agents}")
        self._fresh_seed = None
        live = set(self.agents)
        grouped: dict[str, tuple[list[int], list[Any]]] = {}
        for agent, action in actions.items():
            if agent in live:  # a finished agent's slot keeps its last action
                behavior, slot = self._slot_of[agent]
                slots, given = grouped.setdefault(behavior.name, ([], []))
                slots.append(slot)
                given.append(action)
        for name, (slots, given) in grouped.items():
            self._behaviors[name].set_actions(slots, given)
        self._live().step(
            {name: ActionTuple(b.continuous, b.discrete) for name, b in self._behaviors.items()}
        )
        return self._report()

    def _report(self) -> StepResult:
        """The step's results for the agents live before it; finished ones then leave."""
        observations = self._observe(self.agents, finals=True)
        rewards, terminations, truncations = {}, {}, {}
        for agent in self.agents:
            behavior, slot = self._slot_of[agent]
            step = self._live().last[behavior.name]
            rewards[agent] = float(step.rewards[slot])
            terminations[agent] = bool(step.terminated[slot])
            truncations[agent] = bool(step.truncated[slot])
        infos: dict[str, dict[str, Any]] = {agent: {} for agent in self.agents}
        self.agents = [a for a in self.agents if not (terminations[a] or truncations[a])]
        self._game_over = not self.agents
        return observations, rewards, terminations, truncations, infos

    def _observe(self, agents: list[str], finals: bool) -> dict[str, Any]:
        """Observations of ``agents`` from the latest step, converted behavior by behavior."""
        by_behavior: dict[str, dict[int, str]] = {}
        for agent in agents:
            behavior, slot = self._slot_of[agent]
            by_behavior.setdefault(behavior.name, {})[slot] = agent
        observations: dict[str, Any] = {}
        for name, members in by_behavior.items():
            step = self._live().last[name]
            converted = self._behaviors[name].observations(step, list(members), finals)
            observations.update((members[slot], obs) for slot, obs in converted.items())
        return {agent: observations[agent] for agent in agents}

    def observation_space(self, agent: str) -> spaces.Space[Any]:
        return self._behavior_of(agent).observation_space

    def action_space(self, agent: str) -> spaces.Space[Any]:
        return self._behavior_of(agent).converter.action_space

    def behavior_of(self, agent: str) -> str:
        """The behavior name of an agent (of any game: names encode it)."""
        return self._behavior_of(agent).name

    def _behavior_of(self, agent: str) -> _Behavior:
        prefix, tagged, _ = agent.rpartition(AGENT_TAG)
        behavior = self._by_prefix.get(prefix) if tagged else None
        if behavior is None:
            raise KeyError(
                f"{agent!r} is not an agent name of this environment (expected "
                f"'<behavior>?team=<t>?agent_id=<id>' with one of {list(self._by_prefix)})."
            )
        return behavior

    def render(self) -> None:
        return None

    def state(self) -> np.ndarray:
        raise NotImplementedError("Unity scenes expose no global state; use the observations.")

    def close(self) -> None:
        """End the player; safe to call twice."""
        if self._players is not None:
            self._players.close()
            self._players = None

    def __del__(self) -> None:
        if getattr(self, "_players", None) is not None:
            self.close()


class UnityAECEnv(parallel_to_aec_wrapper):
    """:class:`UnityParallelEnv` turn by turn (PettingZoo's ``parallel_to_aec`` conversion).

    Agents act in the order of ``agents``; Unity steps once the last live agent has acted.
    Same arguments and semantics as :class:`UnityParallelEnv`, which ``unwrapped`` returns.
    """

    def __init__(
        self,
        file_name: str | None,
        behavior_names: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(UnityParallelEnv(file_name, behavior_names, **kwargs))

    @property
    def possible_agents(self) -> list[str]:
        """The current game's agents: each game names them anew (Unity agent ids change)."""
        return self.env.possible_agents


__all__ = ["UnityAECEnv", "UnityParallelEnv", "agent_name", "team_prefix"]
