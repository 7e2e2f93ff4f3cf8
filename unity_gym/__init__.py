"""unity_gym: drive Unity ML-Agents players (and built-in stand-ins) from Python.

The low-level API mirrors ``mlagents_envs``: ``UnityEnvironment`` speaks ML-Agents' gRPC
protocol (communication API 1.5.0) to a Unity build, the Unity Editor, or a built-in stand-in
player (``file_name="builtin:3DBall"``). With Gymnasium installed, ``UnityGymEnv`` (one agent)
and ``UnityVectorEnv`` (every agent of a behavior) are Gymnasium environments, and importing
this package registers ``unity_gym/<Player>-v0`` and ``unity_gym/Unity-v0`` for
``gymnasium.make``/``make_vec`` (see :mod:`unity_gym.registration`).
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

_ADAPTERS = {
    "UnityGymEnv": "unity_gym.gym_env",
    "UnityVectorEnv": "unity_gym.gymnasium_vector_env",
}


def __getattr__(name: str) -> object:
    # The Gymnasium adapters load on first use: player processes and protocol-only installs
    # import this package too and need none of them.
    if name in _ADAPTERS:
        import importlib

        try:
            return getattr(importlib.import_module(_ADAPTERS[name]), name)
        except ModuleNotFoundError as err:
            raise ImportError(f"unity_gym.{name} needs {err.name}: pip install {err.name}") from err
    raise AttributeError(f"module 'unity_gym' has no attribute {name!r}")


try:
    import gymnasium  # noqa: F401
except ImportError:  # protocol-only installs: nothing to register
    pass
else:
    from unity_gym.registration import register_envs

    register_envs()  # string entry points: registering imports no adapter

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
    "UnityGymEnv",
    "UnityVectorEnv",
    "__version__",
]
