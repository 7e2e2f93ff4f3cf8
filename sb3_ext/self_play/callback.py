"""The SB3 callback that runs ML-Agents' self-play schedule on a :class:`TeamVecEnv`."""

from __future__ import annotations

from collections.abc import Callable

from stable_baselines3.common.callbacks import BaseCallback

from sb3_ext.self_play.snapshots import PolicySnapshot
from sb3_ext.self_play.team_vec_env import TeamVecEnv

ELO_STAT = "Self-play/ELO"  # ML-Agents' name (lower-case "p", unlike its docs)
StatsSink = Callable[[str, float], None]


class SelfPlayCallback(BaseCallback):
    """Snapshots every ``save_steps``, learning-team changes every ``team_change`` learner
    steps, and ``Self-play/ELO`` after every finished game of the learning team.

    :param env: the model's :class:`TeamVecEnv` (under any wrappers).
    :param stats: where to report ``Self-play/ELO`` (default: SB3's ``logger.record_mean``).
    """

    def __init__(self, env: TeamVecEnv, stats: StatsSink | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        if env.ghost is None or env.controller is None:
            raise ValueError(
                f"{env.name}: SelfPlayCallback needs a TeamVecEnv built with self_play settings."
            )
        self.env = env
        self._stats = stats

    def _on_training_start(self) -> None:
        self.env.attach(self.model)

    def _on_step(self) -> bool:
        env, ghost, controller = self.env, self.env.ghost, self.env.controller
        assert ghost is not None and controller is not None
        steps = int(self.model.num_timesteps)
        for elo in env.elo_updates:
            self._record(ELO_STAT, elo)
        env.elo_updates.clear()
        if ghost.snapshot_due(steps):
            ghost.save_snapshot(PolicySnapshot.of(self.model), steps)
        if env.learning and ghost.team_change_due(steps) and len(controller.teams) > 1:
            ghost.last_team_change = steps
            controller.change_learning_team()
        return True

    def _on_training_end(self) -> None:
        assert self.env.ghost is not None and self.env.controller is not None
        self.env.controller.finish(self.env.ghost)

    def _record(self, key: str, value: float) -> None:
        if self._stats is not None:
            self._stats(key, value)
        else:
            self.logger.record_mean(key, value)
