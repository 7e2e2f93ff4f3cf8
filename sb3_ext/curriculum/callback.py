"""The SB3 callback that runs a :class:`Curriculum` in a plain training script.

It watches one behavior (the model being trained): episode returns from the ``"episode"``
infos of ``Monitor`` / ``VecMonitor``, progress as ``num_timesteps / max_steps``. It sends
the current values through ``apply`` when training starts and again at every lesson change,
and records ``Environment/Lesson Number/<parameter>`` in SB3's logger. ``apply`` is, for
unity_gym's adapters, their ``set_environment_parameters`` (give the adapter
``environment_parameters=curriculum.values()`` too, so that the very first episodes already
play the first lesson); for a ``UnityEnvironment`` of your own, :func:`channel_sink` over its
:class:`EnvironmentParametersChannel`; for any other environment, a function that sets the
values there (e.g. through ``VecEnv.env_method``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecNormalize

from sb3_ext.curriculum.curriculum import LESSON_NUMBER_STAT, Curriculum
from sb3_ext.curriculum.lessons import ParameterValue
from unity_gym.env_group import send_environment_parameter
from unity_gym.side_channel.environment_parameters_channel import EnvironmentParametersChannel

logger = logging.getLogger(__name__)

ParameterSink = Callable[[Mapping[str, ParameterValue]], None]


def channel_sink(channels: Sequence[EnvironmentParametersChannel]) -> ParameterSink:
    """Send values on these channels (one per Unity environment); Unity applies them with the
    next step or reset, and a sampler's draws restart from its seed."""

    def apply(values: Mapping[str, ParameterValue]) -> None:
        for channel in channels:
            for key, value in values.items():
                send_environment_parameter(channel, key, value)

    return apply


class CurriculumCallback(BaseCallback):
    """Advance ``curriculum`` as the model trains ``behavior``.

    :param curriculum: the lessons; its criteria that name ``behavior`` are evaluated.
    :param apply: receives every parameter's current value, at the start and at each change.
    :param behavior: the name completion criteria use for the trained model.
    :param max_steps: the step count progress is measured against (default: the
        ``total_timesteps`` of ``learn``).

    A lesson with ``require_reset`` restarts every episode at the end of the current rollout
    (SB3 collects rollouts whole): the environment is reset and the model continues from
    the new first observations.
    """

    def __init__(
        self,
        curriculum: Curriculum,
        apply: ParameterSink,
        behavior: str,
        max_steps: int | None = None,
        verbose: int = 0,
    ) -> None:
        super().__init__(verbose)
        if max_steps is not None and max_steps <= 0:
            raise ValueError(f"max_steps must be positive, got {max_steps}.")
        self.curriculum = curriculum
        self.apply = apply
        self.behavior = behavior
        self.max_steps = max_steps
        self._reset_pending = False

    def _on_training_start(self) -> None:
        if self.max_steps is None:
            self.max_steps = max(1, int(self.model._total_timesteps))
        self.apply(self.curriculum.values())
        self._record_lessons()

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", []):
            episode = info.get("episode")
            if episode is not None:
                self.curriculum.record_episode(self.behavior, float(episode["r"]))
        assert self.max_steps is not None
        update = self.curriculum.update({self.behavior: self.num_timesteps / self.max_steps})
        if update:
            for change in update.changes:
                logger.info(change.message())
                if self.verbose:
                    print(change.message())
            self.apply(self.curriculum.values())
            self._reset_pending = self._reset_pending or update.require_reset
        self._record_lessons()
        return True

    def _on_rollout_end(self) -> None:
        if self._reset_pending:
            self._reset_pending = False
            self._restart_episodes()

    def _record_lessons(self) -> None:
        for parameter, number in self.curriculum.lesson_numbers.items():
            self.logger.record(LESSON_NUMBER_STAT.format(parameter), number)

    def _restart_episodes(self) -> None:
        """Reset the environment and continue from its first observations."""
        env, model = self.training_env, self.model
        obs = env.reset()
        model._last_obs = obs  # type: ignore[assignment]
        if hasattr(model, "_last_episode_starts"):
            model._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
        normalizer = model.get_vec_normalize_env()
        if isinstance(normalizer, VecNormalize) and hasattr(model, "_last_original_obs"):
            model._last_original_obs = normalizer.get_original_obs()
