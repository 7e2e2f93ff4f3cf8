"""An SB3 ``VecEnv`` over the teams of one model in a competitive game: ML-Agents' ghost training.

The game is any :class:`TeamGame`: teams of agents that step together (Unity's
``LockstepTeams`` for a scene's ``Name?team=N`` behaviors, :class:`ParallelEnvTeams` for a
PettingZoo game). A :class:`TeamVecEnv` gives SB3 the agents of one team at a time:

- **Self-play** (``self_play`` settings given): SB3 sees the learning team's agents; every
  other team of this model acts with a frozen snapshot (:class:`FrozenPolicy`), swapped every
  ``swap_steps`` ghost steps and at every team change; only the learning team's experience
  reaches SB3. When the learning team belongs to another model (an asymmetric game, one model
  per side), this model's teams keep playing its snapshots inside :meth:`step_wait` until one
  of them learns again, then SB3 gets that team's first observations with every episode ended
  (truncated). Finished games of the learning team move the ELO ratings
  (:meth:`SelfPlayController.record_game`). :class:`SelfPlayCallback` saves snapshots and
  rotates the learning team on ML-Agents' schedule.
- **Without self-play**: every team's agents learn together, one after the other in the
  batch (what mlagents-learn does for a behavior with several teams and no ``self_play``).

Every team of one ``TeamVecEnv`` must have the same spaces (ML-Agents' teams of one behavior
do); asymmetric games use one ``TeamVecEnv`` (and one model) per side, sharing a controller.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.vec_env.base_vec_env import (
    VecEnv,
    VecEnvIndices,
    VecEnvObs,
    VecEnvStepReturn,
)

from sb3_ext.self_play.elo import game_result
from sb3_ext.self_play.league import LATEST, Ghost, SelfPlayController, SelfPlaySettings
from sb3_ext.self_play.snapshots import FrozenPolicy, PolicySnapshot

TRUNCATED_KEY = "TimeLimit.truncated"
TERMINAL_KEY = "terminal_observation"


@dataclass
class TeamBatch:
    """One team's agents after a step, in SB3's ``VecEnv`` layout: an agent's finished episode
    has ``dones`` set, its final observation in ``infos[i]["terminal_observation"]`` and
    ``infos[i]["TimeLimit.truncated"]`` when it was cut short; ``obs`` already holds the next
    episode's first observation."""

    obs: VecEnvObs
    rewards: np.ndarray
    dones: np.ndarray
    infos: list[dict[str, Any]] = field(default_factory=list)
    # Allowed actions for the next step (True = allowed), flat over branches; None when the
    # team has no discrete actions.
    action_masks: np.ndarray | None = None

    def __post_init__(self) -> None:
        if not self.infos:
            self.infos = [{} for _ in range(len(self.rewards))]

    @property
    def terminated(self) -> np.ndarray:
        """Episodes that ended by the game's rules (not cut short): the ones ELO counts."""
        cut = np.array([bool(info.get(TRUNCATED_KEY, False)) for info in self.infos])
        return self.dones & ~cut


class TeamGame(Protocol):
    """Teams of agents stepping together, each team's batch in SB3's layout."""

    @property
    def teams(self) -> Sequence[str]: ...

    def observation_space(self, team: str) -> spaces.Space[Any]: ...

    def action_space(self, team: str) -> spaces.Space[Any]: ...

    def num_agents(self, team: str) -> int: ...

    def reset(self) -> dict[str, TeamBatch]:
        """Observations to start from."""
        ...

    def step(self, actions: Mapping[str, np.ndarray]) -> dict[str, TeamBatch]:
        """Every team's actions -> every team's next batch."""
        ...

    def restart(self) -> None:
        """Ask for a full reset at the next step: it ends every episode (truncated)."""
        ...

    def close(self) -> None: ...


class TeamVecEnv(VecEnv):
    """SB3's view of one model's teams (see the module docstring).

    :param game: the teams this model plays (``game.teams``, in rotation order).
    :param self_play: ML-Agents' ``self_play`` settings; None trains every team together.
    :param controller: the learning-team rotation, shared with the other side's ``TeamVecEnv``
        in an asymmetric game; a new one when None.
    :param name: names the model in messages and saved state.
    :param seed: seeds the opponent draws.
    """

    def __init__(
        self,
        game: TeamGame,
        self_play: SelfPlaySettings | None = None,
        controller: SelfPlayController | None = None,
        name: str = "policy",
        seed: int | None = None,
    ) -> None:
        self.game = game
        self.teams = list(game.teams)
        if not self.teams:
            raise ValueError(f"{name}: the game has no team to play.")
        first = self.teams[0]
        for team in self.teams[1:]:
            for what, space in (
                ("observation", game.observation_space),
                ("action", game.action_space),
            ):
                if space(team) != space(first):
                    raise ValueError(
                        f"{name}: teams {first!r} and {team!r} have different {what} spaces "
                        f"({space(first)} vs {space(team)}); one model plays teams of one kind. "
                        "Give each kind of team its own TeamVecEnv and model (an asymmetric "
                        "game), sharing one SelfPlayController."
                    )
        self.sizes = {team: game.num_agents(team) for team in self.teams}
        self.ghost: Ghost | None = None
        self.controller: SelfPlayController | None = None
        if self_play is None:
            num_envs = sum(self.sizes.values())
        else:
            if len(set(self.sizes.values())) != 1:
                raise ValueError(
                    f"{name}: self-play gives SB3 one team at a time, so every team needs the "
                    f"same number of agents (got {self.sizes})."
                )
            num_envs = self.sizes[first]
            self.ghost = Ghost(name, self.teams, self_play, seed)
            self.controller = controller if controller is not None else SelfPlayController()
            self.controller.subscribe(self.ghost)
            self.controller.add_restart(game.restart)
        self.name = name
        self.render_mode = None
        super().__init__(num_envs, game.observation_space(first), game.action_space(first))
        self.opponent: FrozenPolicy | None = None
        self.model: BaseAlgorithm | None = None
        self.elo_updates: list[float] = []  # ratings after each finished game, drained by stats
        self._batches: dict[str, TeamBatch] = {}
        self._sb3_team = first
        self._sb3_obs: VecEnvObs | None = None
        self._actions: np.ndarray | None = None
        self._changes_seen = 0

    # -- self-play hooks (SelfPlayCallback) ------------------------------------------------

    def attach(self, model: BaseAlgorithm) -> None:
        """Start self-play with ``model``: its policy's copy plays the snapshots; a first
        snapshot is taken when the ring is empty (ML-Agents saves one at policy creation)."""
        ghost = self._require_ghost()
        assert self.controller is not None
        self.controller.unfinish(ghost)
        self.model = model
        self.opponent = FrozenPolicy(model)
        if not ghost.snapshots:
            ghost.save_snapshot(PolicySnapshot.of(model), int(model.num_timesteps))
        self._load_opponent()

    def swap_opponent(self) -> int:
        """Draw the snapshot this model's non-learning teams play next; returns its index."""
        index = self._require_ghost().draw_opponent()
        self._load_opponent()
        return index

    @property
    def learning(self) -> bool:
        """Whether one of this model's teams is the learning team (always without self-play)."""
        return self.controller is None or self.controller.learning_team in self.sizes

    # -- VecEnv API ---------------------------------------------------------------------

    def reset(self) -> VecEnvObs:
        self._batches = self.game.reset()
        if self.controller is not None:
            self._changes_seen = self.controller.changes
        if self.ghost is None:
            return self._concatenated(self._batches).obs
        learning = self.controller.learning_team if self.controller else None
        self._sb3_team = learning if learning in self.sizes else self.teams[0]
        self._sb3_obs = self._batches[self._sb3_team].obs
        return self._sb3_obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async(): nothing to act with.")
        if self.ghost is None:
            return self._step_all(self._actions)
        if not self.learning:
            return self._sit_out()
        acted = self._sb3_team
        batches = self._play({acted: self._actions})
        now = self.controller.learning_team if self.controller else acted
        batch = batches[acted]
        if now in self.sizes and now != acted:  # a team change restarted the game
            self._sb3_team = now
            batch = TeamBatch(batches[now].obs, batch.rewards, batch.dones, batch.infos)
        else:
            self._record_games(acted, batch)
        self._sb3_obs = batch.obs
        return batch.obs, batch.rewards, batch.dones, batch.infos

    def action_masks(self) -> np.ndarray:
        """Allowed actions (True = allowed) of the agents SB3 acts for, for MaskablePPO."""
        if self.ghost is None:
            masks = self._concatenated(self._batches).action_masks
        else:
            masks = self._batches[self._sb3_team].action_masks
        if masks is None:
            raise AttributeError(f"{self.name}: the game has no discrete actions to mask.")
        return masks

    def close(self) -> None:
        self.game.close()

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self, attr_name, value)

    def env_method(
        self,
        method_name: str,
        *method_args: Any,
        indices: VecEnvIndices = None,
        **method_kwargs: Any,
    ) -> list[Any]:
        if method_name == "action_masks":
            masks = self.action_masks()
            return [masks[i] for i in self._get_indices(indices)]
        result = getattr(self, method_name)(*method_args, **method_kwargs)
        return [result for _ in self._get_indices(indices)]

    def env_is_wrapped(self, wrapper_class: type, indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._get_indices(indices)]

    def get_images(self) -> Sequence[np.ndarray | None]:
        return [None for _ in range(self.num_envs)]

    # -- stepping ----------------------------------------------------------------------

    def _play(self, actions: Mapping[str, np.ndarray]) -> dict[str, TeamBatch]:
        """One step of the game: the given teams' actions, a snapshot's for this model's other
        teams; counts ghost steps and swaps snapshots when due or after a team change."""
        ghost, opponent = self._require_ghost(), self.opponent
        if opponent is None:
            raise RuntimeError(
                f"{self.name}: self-play has no opponent yet. Pass SelfPlayCallback(env) to "
                "model.learn, or call env.attach(model) before stepping."
            )
        everyone = dict(actions)
        ghost_agents = 0
        for team in self.teams:
            if team not in everyone:
                batch = self._batches[team]
                everyone[team] = opponent.act(batch.obs, batch.action_masks, batch.dones)
                ghost_agents += self.sizes[team]
        self._batches = self.game.step(everyone)
        changed = self.controller is not None and self.controller.changes != self._changes_seen
        if changed and self.controller is not None:
            self._changes_seen = self.controller.changes
        if ghost.count_ghost_steps(ghost_agents) or changed:
            self.swap_opponent()
        return self._batches

    def _sit_out(self) -> VecEnvStepReturn:
        """Another model learns: play this model's teams with the snapshot until one of them
        learns again, then start SB3 there with every episode ended (truncated)."""
        last = self._sb3_obs
        while not self.learning:
            self._play({})
        team = self.controller.learning_team if self.controller else self.teams[0]
        assert team is not None
        self._sb3_team = team
        batch = self._batches[team]
        n = self.num_envs
        infos = [{TRUNCATED_KEY: True, TERMINAL_KEY: _row(last, i)} for i in range(n)]
        self._sb3_obs = batch.obs
        return batch.obs, np.zeros(n, dtype=np.float32), np.ones(n, dtype=bool), infos

    def _record_games(self, team: str, batch: TeamBatch) -> None:
        if self.controller is None:
            return
        for agent in np.flatnonzero(batch.terminated):
            result = game_result(float(batch.rewards[agent]))
            self.elo_updates.append(self.controller.record_game(team, result))

    def _step_all(self, actions: np.ndarray) -> VecEnvStepReturn:
        split, start = {}, 0
        for team in self.teams:
            split[team] = actions[start : start + self.sizes[team]]
            start += self.sizes[team]
        self._batches = self.game.step(split)
        batch = self._concatenated(self._batches)
        return batch.obs, batch.rewards, batch.dones, batch.infos

    def _concatenated(self, batches: Mapping[str, TeamBatch]) -> TeamBatch:
        parts = [batches[team] for team in self.teams]
        first = parts[0].obs
        obs: VecEnvObs
        if isinstance(first, dict):
            obs = {k: np.concatenate([_part(p.obs, k) for p in parts]) for k in first}
        else:
            obs = np.concatenate([np.asarray(p.obs) for p in parts])
        masks = None
        if all(p.action_masks is not None for p in parts):
            masks = np.concatenate([np.asarray(p.action_masks) for p in parts])
        return TeamBatch(
            obs,
            np.concatenate([p.rewards for p in parts]),
            np.concatenate([p.dones for p in parts]),
            [info for p in parts for info in p.infos],
            masks,
        )

    def _load_opponent(self) -> None:
        ghost, opponent = self._require_ghost(), self.opponent
        if opponent is None:
            return
        if ghost.current_opponent == LATEST or ghost.current_opponent >= len(ghost.snapshots):
            if self.model is not None:
                opponent.load(PolicySnapshot.of(self.model))
            else:
                opponent.load(ghost.snapshots[-1])
        else:
            opponent.load(ghost.snapshots[ghost.current_opponent])

    def _require_ghost(self) -> Ghost:
        if self.ghost is None:
            raise RuntimeError(f"{self.name}: this TeamVecEnv trains without self-play.")
        return self.ghost

    # -- saved state -------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The league to continue from: this model's snapshots, ratings, counters and the
        learning-team rotation."""
        ghost = self._require_ghost()
        controller = self.controller
        assert controller is not None
        return {"ghost": ghost.state_dict(), "controller": controller.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        ghost = self._require_ghost()
        ghost.load_state_dict(state["ghost"])
        if self.controller is not None:
            self.controller.load_state_dict(state["controller"])
        self._load_opponent()


def _part(obs: VecEnvObs, key: str) -> np.ndarray:
    assert isinstance(obs, dict)
    return obs[key]


def _row(obs: VecEnvObs | None, index: int) -> Any:
    if obs is None:
        return None
    if isinstance(obs, dict):
        return {key: value[index] for key, value in obs.items()}
    return np.asarray(obs)[index]
