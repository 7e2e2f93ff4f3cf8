"""Training statistics with ML-Agents' names, aggregation and outputs.

Each behavior has a :class:`BehaviorStats`: values are collected between summaries (episode
rewards and lengths, losses, stats the player sends through the stats channel with their
aggregation method) and, every ``summary_freq`` steps, written to TensorBoard (one folder per
behavior), to the timer gauges, and as mlagents-learn's console line::

    3DBall. Step: 12000. Time Elapsed: 24.108 s. Mean Reward: 1.234. Std of Reward: 0.567. Training.

:class:`SB3StatsBridge` maps the keys SB3 logs (``train/value_loss`` ...) to ML-Agents' names.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from stable_baselines3.common.logger import KVWriter

from cli.run_timers import RunTimers
from sb3_ext.self_play.callback import ELO_STAT
from unity_gym.side_channel.stats_side_channel import EnvironmentStats, StatsAggregationMethod

logger = logging.getLogger("unity_sb3")

CUMULATIVE_REWARD = "Environment/Cumulative Reward"
EPISODE_LENGTH = "Environment/Episode Length"
IS_TRAINING = "Is Training"
ELO = ELO_STAT  # "Self-play/ELO"

# SB3 logger keys -> ML-Agents metric names (and a sign for SB3's negated entropy loss).
SB3_TO_MLAGENTS: dict[str, tuple[str, float]] = {
    "train/policy_gradient_loss": ("Losses/Policy Loss", 1.0),
    "train/actor_loss": ("Losses/Policy Loss", 1.0),
    "train/value_loss": ("Losses/Value Loss", 1.0),
    "train/critic_loss": ("Losses/Value Loss", 1.0),
    "train/entropy_loss": ("Policy/Entropy", -1.0),
    "train/learning_rate": ("Policy/Learning Rate", 1.0),
    "train/clip_range": ("Policy/Epsilon", 1.0),
    "train/ent_coef_scheduled": ("Policy/Beta", 1.0),
    "train/ent_coef": ("Policy/Continuous Entropy Coeff", 1.0),
    "train/q1_loss": ("Losses/Q1 Loss", 1.0),
    "train/q2_loss": ("Losses/Q2 Loss", 1.0),
}
# Keys an algorithm logs with another meaning: DiscreteSAC's ent_coef is the mean over branches.
ALGORITHM_NAMES: dict[str, dict[str, tuple[str, float]]] = {
    "DiscreteSAC": {"train/ent_coef": ("Policy/Discrete Entropy Coeff", 1.0)},
}
# SB3 keys ML-Agents has no name for keep theirs under this prefix.
SB3_PREFIX = "SB3/"


class BehaviorStats:
    """Values of one behavior since the last summary, and where summaries go.

    Learner threads add values and write summaries while the command may close the stats at
    the end of the run: :meth:`close` waits for a summary being written, and once closed,
    summaries still go to the console but no longer to TensorBoard.
    """

    def __init__(
        self,
        name: str,
        tensorboard_dir: Path | None,
        timers: RunTimers,
        start_time: float | None = None,
    ) -> None:
        self.name = name
        self.timers = timers
        self.start_time = time.time() if start_time is None else start_time
        self._values: defaultdict[str, list[float]] = defaultdict(list)
        self._aggregation: dict[str, StatsAggregationMethod] = {}
        self._lock = threading.Lock()
        # Held while the TensorBoard writer is used or closed.
        self._writer_lock = threading.Lock()
        self._writer: Any = None
        if tensorboard_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            tensorboard_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(str(tensorboard_dir))

    def add(
        self,
        key: str,
        value: float,
        aggregation: StatsAggregationMethod = StatsAggregationMethod.AVERAGE,
    ) -> None:
        """Record ``value``; MOST_RECENT keeps only the latest of a summary period."""
        with self._lock:
            self._aggregation[key] = aggregation
            if aggregation == StatsAggregationMethod.MOST_RECENT:
                self._values[key] = [float(value)]
            else:
                self._values[key].append(float(value))

    def add_environment_stats(self, stats: EnvironmentStats) -> None:
        for key, values in stats.items():
            for value, aggregation in values:
                self.add(key, value, aggregation)

    def mean(self, key: str) -> float | None:
        with self._lock:
            values = self._values.get(key)
            return float(np.mean(values)) if values else None

    def write_summary(self, step: int, training: bool) -> str:
        """Write and clear the period's values; returns the console line (also logged)."""
        self.add(IS_TRAINING, 1.0 if training else 0.0, StatsAggregationMethod.MOST_RECENT)
        with self._lock:
            values, self._values = dict(self._values), defaultdict(list)
            aggregation = dict(self._aggregation)
        with self._writer_lock:
            for key, data in values.items():
                method = aggregation.get(key, StatsAggregationMethod.AVERAGE)
                summary = (
                    float(np.sum(data))
                    if method == StatsAggregationMethod.SUM
                    else float(np.mean(data))
                )
                if self._writer is not None:
                    self._writer.add_scalar(key, summary, step)
                    if method == StatsAggregationMethod.HISTOGRAM:
                        self._writer.add_histogram(f"{key}_hist", np.asarray(data), step)
                gauge = f"{self.name}.{key}".replace("/", ".").replace(" ", "")
                self.timers.set_gauge(f"{gauge}.mean", float(np.mean(data)))
                self.timers.set_gauge(f"{gauge}.sum", float(np.sum(data)))
            if self._writer is not None:
                self._writer.flush()
        line = self.console_line(step, values.get(CUMULATIVE_REWARD), training, values.get(ELO))
        logger.info(line)
        return line

    def console_line(
        self,
        step: int,
        rewards: list[float] | None,
        training: bool,
        elo: list[float] | None = None,
    ) -> str:
        parts = [
            self.name,
            f"Step: {step}",
            f"Time Elapsed: {time.time() - self.start_time:0.3f} s",
        ]
        if rewards:
            parts.append(f"Mean Reward: {np.mean(rewards):0.3f}")
            parts.append(f"Std of Reward: {np.std(rewards):0.3f}")
            parts.append("Training" if training else "Not Training")
            if elo:  # as mlagents-learn: after the training state, only with rewards
                parts.append(f"ELO: {np.mean(elo):0.3f}")
        else:
            parts.append("No episode was completed since last summary")
            parts.append("Training" if training else "Not Training")
        return ". ".join(parts) + "."

    def add_text(self, tag: str, text: str) -> None:
        """Write ``text`` to TensorBoard (ignored once closed)."""
        with self._writer_lock:
            if self._writer is not None:
                self._writer.add_text(tag, text)
                self._writer.flush()

    def close(self) -> None:
        """Close TensorBoard's writer once a summary being written is done; later summaries
        reach the console only. Closing twice is harmless."""
        with self._writer_lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


class SB3StatsBridge(KVWriter):
    """An SB3 logger output that forwards each dumped value to :class:`BehaviorStats`, named
    as ML-Agents names it for ``algorithm`` (the plan's class name)."""

    def __init__(self, stats: BehaviorStats, algorithm: str | None = None) -> None:
        self.stats = stats
        self.names = {**SB3_TO_MLAGENTS, **ALGORITHM_NAMES.get(algorithm or "", {})}

    def write(
        self,
        key_values: dict[str, Any],
        key_excluded: dict[str, tuple[str, ...]],
        step: int = 0,
    ) -> None:
        for key, value in key_values.items():
            if not isinstance(value, int | float | np.floating | np.integer):
                continue
            if key in self.names:
                name, sign = self.names[key]
                self.stats.add(name, sign * float(value))
            elif key.startswith("train/"):
                self.stats.add(SB3_PREFIX + key.removeprefix("train/"), float(value))

    def close(self) -> None:
        """Nothing to release; the stats' TensorBoard writer is closed with the run."""
