"""The contract between the academy and one simulated behavior (a "task").

A task simulates every agent of one behavior, in all training areas at once, as numpy arrays
indexed by agent (area-major: the agents of area 0 first). It knows nothing about gRPC,
protobuf, decision periods or step limits: the :class:`~unity_gym.players.academy.Academy`
decides when agents act, report and restart, and turns what :meth:`Task.observe` returns into
observation protos.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from unity_gym.base_env import (
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.channels import EnvironmentParameters, StatsRecorder

# Game time of one academy step, in seconds: Unity's default fixed time step.
FIXED_DELTA_TIME = 0.02


# When the built-ins read their environment parameters: Unity's ``OnEpisodeBegin``.
AT_EPISODE_START = "each episode start, per agent (a sampler draws anew at every read)"


@dataclass(frozen=True)
class EnvironmentParameterInfo:
    """An ML-Agents environment parameter a task reads (Unity's ``EnvironmentParameters``).

    Python sets it with ``EnvironmentParametersChannel`` or a trainer config's
    ``environment_parameters``; until then the task uses ``default``. ``read_at`` says when the
    task reads it: a constant gives the same value at every read, a sampler (uniform,
    gaussian, multirange) draws a new one at every read.
    """

    name: str
    default: float
    description: str
    read_at: str = AT_EPISODE_START


@dataclass(frozen=True)
class TaskContext:
    """What a task may use besides its own state: randomness, parameters from Python, stats."""

    rng: np.random.Generator
    parameters: EnvironmentParameters
    stats: StatsRecorder
    num_areas: int


class Task(ABC):
    """One behavior's agents, simulated in lock-step.

    Subclasses set the class attributes (the registry reads them without instantiating) and
    implement the four hooks. Rewards follow Unity's ``Agent.AddReward``/``SetReward``: a task
    adds to or overwrites entries of the float32 ``rewards`` array it is given; the academy
    reports the value at the agent's next decision or episode end and then zeroes it.
    """

    behavior_name: ClassVar[str]  # fully qualified, as Unity sends it: "<name>?team=<id>"
    behavior_spec: ClassVar[BehaviorSpec]
    agents_per_area: ClassVar[int] = 1
    decision_period: ClassVar[int] = 1
    max_step: ClassVar[int] = 0  # academy steps per episode; 0 means no limit
    # Every environment parameter the task reads (``self.context.parameters``), with its default.
    environment_parameters: ClassVar[tuple[EnvironmentParameterInfo, ...]] = ()

    def __init__(self, num_agents: int, context: TaskContext) -> None:
        self.num_agents = num_agents
        self.context = context

    @property
    def rng(self) -> np.random.Generator:
        return self.context.rng

    @abstractmethod
    def begin_episode(self, agents: np.ndarray) -> None:
        """Start a new episode for the agents at these indices (Unity's ``OnEpisodeBegin``)."""

    @abstractmethod
    def act(
        self, continuous: np.ndarray, discrete: np.ndarray, rewards: np.ndarray
    ) -> np.ndarray | None:
        """Advance every agent by one academy step with its current action.

        ``continuous`` is float32 ``(n, continuous_size)``, ``discrete`` int32
        ``(n, branches)``. Returns a bool array ``(n,)``, True where the task ended the
        agent's episode this step (Unity's ``EndEpisode``), or None when it ended none (the
        common case, which the academy then checks for free).
        """

    @abstractmethod
    def observe(self, agents: np.ndarray) -> list[np.ndarray]:
        """Current observations of the agents at these indices, one batch per observation spec.

        Vector observations are float arrays ``(k, *shape)``; visual ones are uint8 images
        ``(k, height, width, channels)`` that the academy sends PNG-compressed.
        """

    def action_mask(self, agents: np.ndarray) -> np.ndarray | None:
        """Bool ``(k, sum(branch sizes))``, True marking a forbidden action; None: all allowed."""
        return None


def vector_observation_spec(size: int, name: str | None = None) -> ObservationSpec:
    """A vector sensor's spec: ``size`` floats, named as Unity names it
    (``VectorSensor_size<N>`` unless ``name`` says otherwise, e.g. a ray sensor's)."""
    return ObservationSpec(
        shape=(size,),
        dimension_property=(DimensionProperty.NONE,),
        observation_type=ObservationType.DEFAULT,
        name=name if name is not None else f"VectorSensor_size{size}",
    )
