"""unity_gym: drive Unity ML-Agents players (and built-in stand-ins) from Python.

The low-level API mirrors ``mlagents_envs``: ``UnityEnvironment`` speaks ML-Agents' gRPC
protocol (communication API 1.5.0) to a Unity build, the Unity Editor, or a built-in stand-in
player (``file_name="builtin:3DBall"``).
"""

__version__ = "0.1.0"

from unity_gym.base_env import (
    ActionSpec,
    ActionTuple,
    BehaviorSpec,
    DecisionSteps,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
    TerminalSteps,
)
from unity_gym.environment import UnityEnvironment

__all__ = [
    "ActionSpec",
    "ActionTuple",
    "BehaviorSpec",
    "DecisionSteps",
    "DimensionProperty",
    "ObservationSpec",
    "ObservationType",
    "TerminalSteps",
    "UnityEnvironment",
    "__version__",
]
