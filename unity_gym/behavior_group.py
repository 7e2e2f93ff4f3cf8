"""The players of one behavior as lock-step slots, with the behavior's Gymnasium spaces.

Shared by every single-behavior adapter (``UnityGymEnv``, ``UnityVectorEnv``, ``UnityVecEnv``):
players (through :class:`~unity_gym.player_set.PlayerSet`), choosing the behavior, converting with
:class:`~unity_gym.spaces.SpaceConverter`, seeding, and the per-slot view that
``call``/``get_attr``/``env_method`` resolve against.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, SlotStep
from unity_gym.env_group import WorkerSettings, choose_behavior
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.player_set import PlayerSet
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler
from unity_gym.spaces import SpaceConverter, VisualDtype


class BehaviorBatches(ABC):
    """One behavior's lock-step batches in its Gymnasium spaces: what single-behavior adapters
    (``UnityVecEnv`` and friends) drive.

    Implemented by :class:`BehaviorGroup` (players of their own) and by
    :class:`~unity_gym.lockstep_behaviors.SharedBehavior` (one behavior of players shared with
    other learners).
    """

    behavior_name: str
    converter: SpaceConverter

    @property
    @abstractmethod
    def envs(self) -> list[UnityEnvironment]:
        """One low-level environment per player."""

    @property
    @abstractmethod
    def last(self) -> SlotStep:
        """The latest lock-step batch."""

    @property
    @abstractmethod
    def num_slots(self) -> int: ...

    @abstractmethod
    def env_of_slot(self, slot: int) -> UnityEnvironment: ...

    @abstractmethod
    def reset(self, seed: int | None = None) -> SlotStep:
        """Observations to start from (new episodes where the implementation can)."""

    @abstractmethod
    def step(self, actions: Any) -> SlotStep:
        """Batched actions in the action space's layout -> the next lock-step batch."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        """Send environment parameters (constants or samplers) to every player; they apply
        from the next step or reset on, and to players restarted later."""

    def observations(self, step: SlotStep) -> Any:
        """The batched observations of ``step`` in the observation space's layout."""
        return self.converter.observations(step.obs)

    def single_observation(self, obs: Sequence[np.ndarray]) -> Any:
        """One slot's low-level observations (one array per spec) -> one space sample."""
        batch = self.converter.observations([o[None] for o in obs])
        if isinstance(batch, dict):
            return {key: value[0] for key, value in batch.items()}
        return batch[0]

    def step_infos(self, step: SlotStep) -> list[dict[str, Any]]:
        """SB3's per-slot infos for ``step``: a finished episode's final observation
        (``terminal_observation``) and whether it was cut short (``TimeLimit.truncated``)."""
        infos: list[dict[str, Any]] = [{} for _ in range(len(step.rewards))]
        for slot, final in step.final_obs.items():
            infos[slot]["terminal_observation"] = self.single_observation(final)
            infos[slot]["TimeLimit.truncated"] = bool(step.truncated[slot])
        return infos

    def action_masks(self, slot: int | None = None) -> np.ndarray:
        """Allowed actions (True = allowed) for the next step, flat over branches.

        Shape ``(num_slots, sum(branches))``, or ``(sum(branches),)`` for one ``slot``.
        """
        mask = self.last.action_mask
        if mask is None:
            masks = self.converter.flat_action_masks(None, self.num_slots)
            return masks if slot is None else masks[slot]
        return ~mask if slot is None else ~mask[slot]


class BehaviorGroup(BehaviorBatches):
    """The players of one behavior as lock-step slots, with the behavior's Gymnasium spaces.

    Opens ``n_players`` players through a :class:`~unity_gym.player_set.PlayerSet` (all or
    none; crashed players restarted when ``settings.restart_policy`` says so), picks the
    behavior, converts actions and observations with :class:`~unity_gym.spaces.SpaceConverter`,
    and seeds. Unity seeds a player only during its handshake, so :meth:`reset` with a seed
    restarts every player (player *i* gets ``seed + i``): the same seed gives the same episodes.
    """

    def __init__(
        self,
        settings: WorkerSettings,
        n_players: int,
        behavior_name: str | None,
        visual_dtype: VisualDtype = "uint8",
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
    ) -> None:
        self.players = PlayerSet(
            settings,
            n_players,
            lambda env: [choose_behavior(env, behavior_name)],
            max_exchanges,
        )
        self.behavior_name = self.players.behavior_names[0]
        self.converter = SpaceConverter.for_behavior(
            self.players.specs[self.behavior_name], visual_dtype
        )
        self._fresh_seed: int | None = settings.seed

    @property
    def envs(self) -> list[UnityEnvironment]:
        return self.players.envs

    @property
    def last(self) -> SlotStep:
        return self.players.last[self.behavior_name]

    @property
    def num_slots(self) -> int:
        return self.players.slots.num_slots(self.behavior_name)

    @property
    def player_pids(self) -> list[int | None]:
        return self.players.player_pids

    def env_of_slot(self, slot: int) -> UnityEnvironment:
        return self.players.env_of_slot(self.behavior_name, slot)

    def reset(self, seed: int | None = None) -> SlotStep:
        """New episodes in every slot: a Unity reset, or with ``seed`` restarted players.

        The first reset after the players started reuses the reset that opened them.
        """
        seed = None if seed is None else int(seed)
        if self._fresh_seed is not None and seed in (None, self._fresh_seed):
            self._fresh_seed = None
        elif seed is None:
            self.players.reset()
        else:
            self._reseed(seed)
            self._fresh_seed = None
        return self.last

    def _reseed(self, seed: int) -> None:
        count = self.num_slots
        self.players.reseed(seed)
        if self.num_slots != count:
            self.close()
            raise UnityEnvironmentException(
                f"After restarting with seed {seed} the players have {self.num_slots} agents of "
                f"behavior {self.behavior_name!r} instead of {count}."
            )

    def step(self, actions: Any) -> SlotStep:
        """Batched actions in the action space's layout -> the next lock-step batch."""
        self._fresh_seed = None
        return self.players.step({self.behavior_name: self.converter.actions(actions)})[
            self.behavior_name
        ]

    def close(self) -> None:
        """End every player; safe to call twice."""
        self.players.close()

    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        self.players.set_environment_parameters(values)


class SlotView:
    """One slot as ``call``/``get_attr`` see it: its action mask, else its player's attributes."""

    render_mode = None

    def __init__(self, group: BehaviorBatches, index: int) -> None:
        self._group = group
        self.index = index

    @property
    def env(self) -> UnityEnvironment:
        return self._group.env_of_slot(self.index)

    def action_masks(self) -> np.ndarray:
        """Allowed discrete actions of this slot, flat over branches (True = allowed)."""
        return self._group.action_masks(self.index)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.env, name)
