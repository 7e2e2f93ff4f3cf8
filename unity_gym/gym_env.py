"""``UnityGymEnv``: a Gymnasium ``Env`` for a Unity scene with one agent of one behavior.

Scenes with several agents (3DBall has 12) are vector environments: use
:class:`~unity_gym.gymnasium_vector_env.UnityVectorEnv` (``gymnasium.make_vec``) or SB3's
:class:`~unity_gym.sb3_vec_env.UnityVecEnv`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector.utils import concatenate, create_empty_array

from unity_gym.agent_slots import DEFAULT_MAX_EXCHANGES, SlotStep
from unity_gym.behavior_group import BehaviorGroup
from unity_gym.env_group import WorkerSettings
from unity_gym.environment import UnityEnvironment
from unity_gym.exception import UnityEnvironmentException
from unity_gym.ray_players import RayPlayers
from unity_gym.restart_policy import RestartPolicy
from unity_gym.side_channel.environment_parameters_channel import ParameterSampler
from unity_gym.side_channel.side_channel import SideChannel
from unity_gym.spaces import VisualDtype


def multi_agent_error(
    behavior: str, agents: int, vector_id: str | None = None
) -> UnityEnvironmentException:
    """The error for a behavior with more than one agent, pointing to the vector adapters."""
    make_vec = f'gymnasium.make_vec("{vector_id}", num_envs=N), ' if vector_id else ""
    return UnityEnvironmentException(
        f"Behavior {behavior!r} has {agents} agents, and UnityGymEnv drives exactly one. Use a "
        f"vector environment with one sub-environment per agent: {make_vec}"
        "unity_gym.UnityVectorEnv (Gymnasium) or unity_gym.sb3_vec_env.UnityVecEnv "
        "(Stable-Baselines3)."
    )


class UnityGymEnv(gym.Env[Any, Any]):
    """One agent of one behavior in one player, as a Gymnasium environment.

    - ``step`` returns ``(obs, reward, terminated, truncated, info)``; ``truncated`` is
      ML-Agents' ``interrupted`` (the agent's ``MaxStep`` ended the episode). Rewards are summed
      between the agent's decisions.
    - When an episode ends, ``step`` returns its final observation. Unity has already restarted
      the agent, so the next :meth:`reset` returns the new episode's first observation without
      resetting Unity; ``reset()`` in the middle of an episode does reset Unity.
    - ``reset(seed=s)``: Unity seeds a player only at its handshake, so a seed restarts the
      player with it (about 0.5 s for a built-in, a build's start-up time otherwise); the same
      seed gives the same episode. The first ``reset()`` returns the observation of the reset
      that opened the player. ``options`` are ignored.
    - Spaces follow :mod:`unity_gym.spaces`: a ``Dict`` observation space for several
      observations, a ``Dict`` action space for hybrid actions (SB3 cannot take those).
    - Discrete behaviors expose :meth:`action_masks` for sb3-contrib's MaskablePPO.

    Arguments are those of :class:`~unity_gym.environment.UnityEnvironment`, plus
    ``behavior_name`` (optional when the scene has one behavior; see
    :func:`~unity_gym.env_group.choose_behavior`), ``visual_dtype`` (``"uint8"``
    images in [0, 255] or ``"float32"`` in [0, 1]) and ``max_exchanges`` (exchanges to wait for
    the agent's next decision before giving up). ``restart_policy`` restarts a player that
    crashes or hangs (the interrupted episode ends truncated; see ``docs/sb3.md``);
    ``ray_players`` runs the player on a Ray cluster (``docs/ray.md``). ``close()``
    (or leaving a ``with`` block) ends the player.
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        file_name: str | None = None,
        worker_id: int | None = None,
        base_port: int | None = None,
        seed: int = 0,
        no_graphics: bool = True,
        timeout_wait: int = 60,
        additional_args: list[str] | None = None,
        side_channels: list[SideChannel] | None = None,
        log_folder: str | None = None,
        behavior_name: str | None = None,
        visual_dtype: VisualDtype = "uint8",
        host: str = "127.0.0.1",
        max_exchanges: int = DEFAULT_MAX_EXCHANGES,
        restart_policy: RestartPolicy | None = None,
        ray_players: RayPlayers | None = None,
    ) -> None:
        channels = list(side_channels or [])
        settings = WorkerSettings(
            file_name=file_name,
            base_port=base_port,
            worker_id_start=worker_id,
            seed=seed,
            no_graphics=no_graphics,
            timeout_wait=timeout_wait,
            additional_args=list(additional_args or []),
            log_folder=log_folder,
            host=host,
            side_channels=lambda _index: channels,
            restart_policy=restart_policy,
            ray_players=ray_players,
        )
        self._group = BehaviorGroup(settings, 1, behavior_name, visual_dtype, max_exchanges)
        if self._group.num_slots != 1:
            self._group.close()
            raise multi_agent_error(self._group.behavior_name, self._group.num_slots)
        self.behavior_name = self._group.behavior_name
        self.observation_space = self._group.converter.observation_space
        self.action_space = self._group.converter.action_space
        self._action_batch: Any = create_empty_array(self.action_space, 1)
        # The next episode's first step when Unity already started it (None: reset Unity).
        self._next: SlotStep | None = None

    @property
    def unity_env(self) -> UnityEnvironment:
        """The low-level environment of the player."""
        return self._group.envs[0]

    @property
    def player_pid(self) -> int | None:
        return self._group.player_pids[0]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        super().reset(seed=seed)
        step = self._next if self._next is not None and seed is None else self._group.reset(seed)
        self._next = None
        return self._observation(step), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self._next = None
        step = self._group.step(concatenate(self.action_space, [action], self._action_batch))
        final = step.final_obs.get(0)
        if final is None:
            obs = self._observation(step)
        else:
            obs = self._group.single_observation(final)
            self._next = step
        return obs, float(step.rewards[0]), bool(step.terminated[0]), bool(step.truncated[0]), {}

    def _observation(self, step: SlotStep) -> Any:
        return self._group.single_observation([o[0] for o in step.obs])

    def action_masks(self) -> np.ndarray:
        """Allowed discrete actions for the next step, flat over branches (True = allowed)."""
        return self._group.action_masks(0)

    def close(self) -> None:
        self._group.close()

    def set_environment_parameters(self, values: Mapping[str, float | ParameterSampler]) -> None:
        """Send environment parameters (constants, or samplers the player draws from at each
        read) to every player: they apply from the next step or reset on (a curriculum's
        lesson change; see :class:`sb3_ext.curriculum.CurriculumCallback`)."""
        self._group.set_environment_parameters(values)
