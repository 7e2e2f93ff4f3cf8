"""An SB3 checkpoint acting for one behavior of a scene driven through the low-level API.

The ``FILE.zip`` kind of :mod:`cli.scene_policies`, apart so that the other kinds need neither
gymnasium nor torch: the model is loaded with the class that saved it, observations go through
the behavior's :class:`~unity_gym.spaces.SpaceConverter` and the ``.normalizer.npz`` statistics
beside the checkpoint, as ``unity-sb3 learn`` trained it.
"""

from __future__ import annotations

import importlib
import json
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from cli.scene_policies import AgentEpisodes, InputError, reason_text
from unity_gym.base_env import ActionTuple, BehaviorSpec, DecisionSteps
from unity_gym.spaces import SpaceConverter, VisualDtype

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm
    from stable_baselines3.common.vec_env import VecNormalize

# The algorithms `unity-sb3 learn` trains (cli.sb3_translation) -> the module holding each.
_ALGORITHM_MODULES = {
    "PPO": "stable_baselines3",
    "SAC": "stable_baselines3",
    "MaskablePPO": "sb3_contrib",
    "RecurrentPPO": "sb3_contrib",
    "DiscreteSAC": "sb3_ext.algorithms",
}
# The module of a checkpoint's policy class -> the algorithm that saved it.
_ALGORITHM_OF_POLICY_MODULE = {
    "stable_baselines3.common.policies": "PPO",
    "stable_baselines3.sac.policies": "SAC",
    "sb3_contrib.common.maskable.policies": "MaskablePPO",
    "sb3_contrib.common.recurrent.policies": "RecurrentPPO",
    "sb3_ext.algorithms.discrete_sac_policy": "DiscreteSAC",
}


class Sb3Policy:
    """An SB3 model acting on the low-level API's steps, as ``unity-sb3 learn`` trained it.

    Observations go through the behavior's :class:`SpaceConverter` and, when the checkpoint
    has statistics, its observation normaliser; MaskablePPO and DiscreteSAC get the action
    masks; RecurrentPPO keeps an LSTM state per agent id, reset when its episode ends.
    """

    def __init__(
        self,
        model: BaseAlgorithm,
        algorithm: str,
        converter: SpaceConverter,
        normalizer: VecNormalize | None = None,
        deterministic: bool = False,
    ) -> None:
        from cli.behavior_learner import MASKED_ALGORITHMS

        self.model = model
        self.algorithm = algorithm
        self.converter = converter
        self.normalizer = normalizer
        self.deterministic = deterministic
        self.masked = algorithm in MASKED_ALGORITHMS
        self.episodes = AgentEpisodes()
        self.states: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # RecurrentPPO: (h, c)

    def end_episodes(self, agent_ids: np.ndarray) -> None:
        self.episodes.end_episodes(agent_ids)

    def __call__(self, steps: DecisionSteps) -> ActionTuple:
        ids = steps.agent_id.tolist()
        starts = self.episodes.starts(ids)
        obs = self.converter.observations(list(steps.obs))
        if self.normalizer is not None:
            obs = self.normalizer.normalize_obs(obs)
        model: Any = self.model
        if self.masked:
            masks = self.converter.flat_action_masks(steps.action_mask or None, len(ids))
            actions, _ = model.predict(obs, deterministic=self.deterministic, action_masks=masks)
        elif self.algorithm == "RecurrentPPO":
            actions = self._recurrent(model, obs, ids, starts)
        else:
            actions, _ = model.predict(obs, deterministic=self.deterministic)
        return self.converter.actions(np.asarray(actions))

    def _recurrent(self, model: Any, obs: Any, ids: list[int], starts: np.ndarray) -> Any:
        layers, _, size = model.policy.lstm_hidden_state_shape
        zero = np.zeros((layers, size), np.float32)
        hidden, cell = (
            np.stack([self.states.get(a, (zero, zero))[part] for a in ids], axis=1)
            for part in (0, 1)
        )
        actions, (hidden, cell) = model.predict(
            obs, state=(hidden, cell), episode_start=starts, deterministic=self.deterministic
        )
        for i, agent in enumerate(ids):
            self.states[agent] = (hidden[:, i], cell[:, i])
        return actions


def sb3_policy(
    path: Path,
    spec: BehaviorSpec,
    behavior: str,
    what: str,
    deterministic: bool = False,
    seed: int | None = None,
) -> Sb3Policy:
    """A policy running the SB3 checkpoint ``path``, after checking that its spaces are the
    behavior's; the ``.normalizer.npz`` beside it, if any, normalises its observations."""
    try:
        from cli.behavior_learner import resolve_init_path
        from cli.config_errors import ConfigError
    except ImportError as err:
        raise InputError(
            f"{what}: SB3 checkpoints need torch and stable-baselines3 ({err.name} is "
            "missing), dependencies of unity-sb3: pip install stable-baselines3 sb3-contrib."
        ) from None
    try:
        weights = resolve_init_path(str(path), "--policy", behavior)
    except ConfigError as err:
        raise InputError(f"{what}: {err}") from None
    model, algorithm = _load_model(weights.model, what)
    visual: VisualDtype = "float32" if _has_float_images(model.observation_space) else "uint8"
    converter = SpaceConverter.for_behavior(spec, visual)
    problems = [
        f"the model's {kind} are {_space_text(theirs)}, the behavior's {_space_text(ours)}"
        for kind, theirs, ours in (
            ("observations", model.observation_space, converter.observation_space),
            ("actions", model.action_space, converter.action_space),
        )
        if _space_text(theirs) != _space_text(ours)
    ]
    if problems:
        raise InputError(
            f"{what} does not fit the behavior {behavior} ({'; '.join(problems)}). Give a "
            "checkpoint trained for this behavior."
        )
    if seed is not None:
        model.set_random_seed(seed % 2**32)
    normalizer = None
    if weights.normalizer is not None:
        normalizer = _normalizer(converter, weights.normalizer, what)
    return Sb3Policy(model, algorithm, converter, normalizer, deterministic)


def _load_model(path: Path, what: str) -> tuple[BaseAlgorithm, str]:
    """Load ``path`` with the class that saved it: the module of its policy class says which
    (read from the zip's JSON ``data``, nothing unpickled); otherwise each class in turn."""
    try:
        with zipfile.ZipFile(path) as archive:
            data = json.loads(archive.read("data"))
        module = data["policy_class"]["__module__"]
    except (OSError, KeyError, ValueError, TypeError, zipfile.BadZipFile) as err:
        raise InputError(f"{what}: not an SB3 checkpoint ({reason_text(err)}).") from None
    known = _ALGORITHM_OF_POLICY_MODULE.get(module)
    candidates = [known] if known else list(_ALGORITHM_MODULES)
    # Inference needs no schedules; not unpickling them spares their code's imports.
    inference_only = {"learning_rate": 0.0, "lr_schedule": lambda _: 0.0, "clip_range": 0.0}
    errors: list[str] = []
    for algorithm in candidates:
        cls = getattr(importlib.import_module(_ALGORITHM_MODULES[algorithm]), algorithm)
        try:
            model: BaseAlgorithm = cls.load(path, device="cpu", custom_objects=inference_only)
        except Exception as err:  # SB3 raises many types for a zip it cannot read
            errors.append(f"{algorithm}: {reason_text(err)}")
            continue
        return model, algorithm
    raise InputError(f"{what}: the checkpoint cannot be loaded ({'; '.join(errors)}).")


def _normalizer(converter: SpaceConverter, path: Path, what: str) -> VecNormalize | None:
    """A VecNormalize holding the statistics of ``path``, normalising what learn normalised
    (every observation but the visual ones); only its ``normalize_obs`` is used."""
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from cli.behavior_learner import restore_normalizer
    from cli.sb3_translation import NORMALIZED_OBSERVATION_CLIP

    specs = converter.behavior_spec.observation_specs
    keys = [k for k, s in zip(converter.keys or ["obs"], specs, strict=True) if not s.is_visual]
    if not keys:
        return None
    spaces_only = _SpacesOnly(converter.observation_space, converter.action_space)
    normalizer = VecNormalize(
        DummyVecEnv([lambda: spaces_only]),
        training=False,
        norm_obs=True,
        norm_reward=False,
        clip_obs=NORMALIZED_OBSERVATION_CLIP,
        norm_obs_keys=keys if converter.keys else None,
    )
    try:
        restore_normalizer(normalizer, path)
    except (OSError, KeyError, ValueError) as err:
        raise InputError(
            f"{what}: the normalizer statistics {path} beside it cannot be read "
            f"({reason_text(err)}); restore the file from its run or delete it."
        ) from None
    return normalizer


class _SpacesOnly(gym.Env[Any, Any]):
    """Stands in for an environment where only its spaces are read (VecNormalize's setup)."""

    def __init__(self, observation_space: spaces.Space[Any], action_space: spaces.Space[Any]):
        self.observation_space = observation_space
        self.action_space = action_space


def _has_float_images(space: spaces.Space[Any]) -> bool:
    boxes = list(space.spaces.values()) if isinstance(space, spaces.Dict) else [space]
    return any(
        isinstance(b, spaces.Box) and len(b.shape) == 3 and b.dtype != np.uint8 for b in boxes
    )


def _space_text(space: spaces.Space[Any]) -> str:
    """Shapes and sizes only: what decides whether a model fits a behavior."""
    if isinstance(space, spaces.Dict):
        return "{" + ", ".join(f"{k}: {_space_text(s)}" for k, s in space.spaces.items()) + "}"
    if isinstance(space, spaces.Box):
        return f"Box{tuple(space.shape)}"
    if isinstance(space, spaces.Discrete):
        return f"Discrete({int(space.n)})"
    if isinstance(space, spaces.MultiDiscrete):
        return f"MultiDiscrete({[int(n) for n in space.nvec]})"
    return str(space)
