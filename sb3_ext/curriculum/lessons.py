"""ML-Agents' lessons: the values of one environment parameter and when each is complete.

A parameter's value is a constant or a sampler description (:class:`ParameterSampler`); the
environment, not Python, draws from a sampler (Unity draws afresh at every read). A curriculum
is a list of :class:`Lesson`; every lesson but the last has :class:`CompletionCriteria`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from unity_gym.side_channel.environment_parameters_channel import ParameterSampler, SamplerTypes

ParameterValue = float | ParameterSampler
Measure = Literal["reward", "progress"]
MEASURES: tuple[Measure, ...] = ("reward", "progress")


@dataclass(frozen=True)
class CompletionCriteria:
    """When a lesson is complete (ML-Agents' ``completion_criteria``, same keys and defaults).

    ``measure: progress`` compares the trained share of ``behavior``'s ``max_steps`` with
    ``threshold``; ``measure: reward`` the mean of its last episode returns (smoothed when
    ``signal_smoothing``). Nothing moves before ``min_lesson_length`` episodes were recorded
    in the lesson. ``require_reset`` restarts every episode when the lesson changes.
    """

    behavior: str
    measure: Measure = "reward"
    min_lesson_length: int = 0
    signal_smoothing: bool = True
    threshold: float = 0.0
    require_reset: bool = False

    def __post_init__(self) -> None:
        if self.measure not in MEASURES:
            raise ValueError(
                f"completion_criteria.measure must be 'reward' or 'progress', not {self.measure!r}."
            )
        if self.measure == "progress" and not 0.0 <= self.threshold <= 1.0:
            raise ValueError(
                "completion_criteria.threshold is a share of max_steps when measure is "
                f"progress, so it must be between 0 and 1 (got {self.threshold})."
            )
        if self.min_lesson_length < 0:
            raise ValueError(
                "completion_criteria.min_lesson_length counts episodes and cannot be negative "
                f"(got {self.min_lesson_length})."
            )

    def need_increment(
        self, progress: float, rewards: Sequence[float], smoothed: float
    ) -> tuple[bool, float]:
        """Whether the lesson is complete, and the new smoothed reward (ML-Agents' rule).

        :param progress: the behavior's trained steps over its ``max_steps``.
        :param rewards: its last episode returns in this lesson (raw environment reward).
        :param smoothed: the smoothed reward of the previous call (0 at first).
        """
        if len(rewards) < self.min_lesson_length:
            return False, smoothed
        if self.measure == "progress":
            return progress > self.threshold, smoothed
        if len(rewards) == 0:
            return False, smoothed
        measure = float(np.mean(rewards))
        if math.isnan(measure):
            return False, smoothed
        if self.signal_smoothing:
            measure = 0.25 * smoothed + 0.75 * measure
            smoothed = measure
        return measure > self.threshold, smoothed


@dataclass(frozen=True)
class Lesson:
    """One lesson: the parameter's value until ``completion_criteria`` hold (None: the last)."""

    name: str
    value: ParameterValue
    completion_criteria: CompletionCriteria | None = None


def describe_value(value: ParameterValue) -> str:
    """A value as mlagents-learn prints it when a lesson starts ("Uniform sampler: ...")."""
    if not isinstance(value, ParameterSampler):
        return f"Float: value={float(value)}"
    arguments = value.arguments
    if value.kind is None:
        return f"Float: value={arguments[0]}"
    if value.kind == SamplerTypes.UNIFORM:
        return f"Uniform sampler: min={arguments[0]}, max={arguments[1]}"
    if value.kind == SamplerTypes.GAUSSIAN:
        return f"Gaussian sampler: mean={arguments[0]}, stddev={arguments[1]}"
    intervals = [list(pair) for pair in zip(arguments[0::2], arguments[1::2], strict=True)]
    return f"MultiRangeUniform sampler: intervals={intervals}"
