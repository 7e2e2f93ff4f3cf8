"""What every reward signal shares: the batch type, the signal interface, checkpoints.

A signal mirrors ML-Agents' ``BaseRewardProvider``: ``evaluate`` gives the raw (unscaled)
reward of each transition, ``update`` takes one optimiser step on a minibatch and returns
ML-Agents' stat names, and the trainer multiplies by ``strength`` (never the signal). Unlike
ML-Agents, ``state_dict`` also holds the optimiser state and any warm-up flag, so a resumed
run continues exactly.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import get_device
from torch import nn

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.network_body import ObsTensor, RewardNetworkSettings

ObsArray = np.ndarray | Mapping[str, np.ndarray]


def obs_to(observations: ObsTensor, device: th.device) -> ObsTensor:
    """Move a tensor or dict of tensors to ``device``."""
    if isinstance(observations, Mapping):
        return {key: value.to(device) for key, value in observations.items()}
    return observations.to(device)


def obs_from_numpy(observations: ObsArray, device: th.device | str = "cpu") -> ObsTensor:
    """A numpy array or dict of arrays as tensors on ``device`` (dtypes kept)."""
    if isinstance(observations, Mapping):
        return {
            key: th.as_tensor(np.asarray(value), device=device)
            for key, value in observations.items()
        }
    return th.as_tensor(np.asarray(observations), device=device)


def obs_batch_size(observations: ObsTensor) -> int:
    if isinstance(observations, Mapping):
        return int(next(iter(observations.values())).shape[0])
    return int(observations.shape[0])


@dataclass(frozen=True)
class Transitions:
    """A batch of transitions ``(s, a, s')``: the input of ``evaluate`` and ``update``.

    ``observations`` / ``next_observations``: ``[B, ...]`` tensors, or dicts of them for
    ``Dict`` spaces. ``actions``: ``[B, ...]`` as the action layout describes (continuous
    values, then branch indices). ``dones``: ``[B]``, 1 where the episode ended with this
    transition (GAIL's ``use_actions`` reads it). RND reads only ``observations``.
    """

    observations: ObsTensor
    next_observations: ObsTensor | None = None
    actions: th.Tensor | None = None
    dones: th.Tensor | None = None

    def __len__(self) -> int:
        return obs_batch_size(self.observations)

    def to(self, device: th.device | str) -> Transitions:
        """The same batch on ``device``."""
        dev = th.device(device)
        return Transitions(
            obs_to(self.observations, dev),
            None if self.next_observations is None else obs_to(self.next_observations, dev),
            None if self.actions is None else self.actions.to(dev),
            None if self.dones is None else self.dones.to(dev),
        )

    @classmethod
    def from_numpy(
        cls,
        observations: ObsArray,
        next_observations: ObsArray | None = None,
        actions: np.ndarray | None = None,
        device: th.device | str = "cpu",
        dones: np.ndarray | None = None,
    ) -> Transitions:
        """A batch from numpy arrays (or dicts of arrays)."""
        return cls(
            obs_from_numpy(observations, device),
            None if next_observations is None else obs_from_numpy(next_observations, device),
            None if actions is None else th.as_tensor(np.asarray(actions), device=device),
            None
            if dones is None
            else th.as_tensor(np.asarray(dones, dtype=np.float32).reshape(-1), device=device),
        )


class RewardSignal(ABC):
    """One intrinsic reward signal, as ML-Agents' reward providers behave.

    ``name`` is ML-Agents' provider name ("Curiosity", "RND"); per-episode reward sums are
    reported as :attr:`reward_stat` (``Policy/Curiosity Reward``, ``Policy/Rnd Reward``).
    ``ignore_done``: ML-Agents bootstraps this signal's value through terminal states.
    """

    name: ClassVar[str]
    ignore_done: ClassVar[bool] = True

    def __init__(self, strength: float, gamma: float, device: th.device | str) -> None:
        self.strength = float(strength)
        self.gamma = float(gamma)
        self.device: th.device = get_device(device)
        self.optimizer: th.optim.Optimizer

    @property
    def reward_stat(self) -> str:
        """ML-Agents' per-episode reward stat: ``Policy/{name.capitalize()} Reward``."""
        return f"Policy/{self.name.capitalize()} Reward"

    @property
    def value_stat(self) -> str:
        """ML-Agents' value-estimate stat: ``Policy/{name.capitalize()} Value Estimate``."""
        return f"Policy/{self.name.capitalize()} Value Estimate"

    @abstractmethod
    def modules(self) -> dict[str, nn.Module]:
        """The signal's networks by name (what ``state_dict`` saves besides the optimiser)."""

    @abstractmethod
    def evaluate(self, batch: Transitions) -> th.Tensor:
        """Raw (unscaled) reward of each transition, ``[B]`` float on :attr:`device`."""

    @abstractmethod
    def update(self, batch: Transitions) -> dict[str, float]:
        """One optimiser step on ``batch``; ML-Agents' stat names and values."""

    def scaled_reward(self, batch: Transitions) -> th.Tensor:
        """``strength * evaluate(batch)``: what the trainer adds to the reward."""
        return self.strength * self.evaluate(batch)

    def parameters(self) -> Iterator[nn.Parameter]:
        for module in self.modules().values():
            yield from module.parameters()

    def to(self, device: th.device | str) -> RewardSignal:
        """Move the networks and the optimiser state to ``device``."""
        self.device = get_device(device)
        for module in self.modules().values():
            module.to(self.device)
        for state in self.optimizer.state.values():
            for key, value in state.items():
                if isinstance(value, th.Tensor) and key != "step":
                    state[key] = value.to(self.device)
        return self

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`_extra_state` saved (nothing by default)."""
        del state

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimiser state and flags (e.g. curiosity's warm-up flag)."""
        return {
            "modules": {key: module.state_dict() for key, module in self.modules().items()},
            "optimizer": self.optimizer.state_dict(),
            **self._extra_state(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (tensors are moved to :attr:`device`)."""
        modules = self.modules()
        saved = state["modules"]
        if set(saved) != set(modules):
            raise ValueError(
                f"{self.name} state has modules {sorted(saved)}, expected {sorted(modules)}."
            )
        for key, module in modules.items():
            module.load_state_dict(saved[key])
        self.optimizer.load_state_dict(state["optimizer"])
        self._load_extra_state(state)


def total_scaled_reward(signals: Sequence[RewardSignal], batch: Transitions) -> th.Tensor:
    """``sum_i strength_i * r_i(batch)`` on the CPU, ``[B]``."""
    total = th.zeros(len(batch))
    for signal in signals:
        total += signal.scaled_reward(batch.to(signal.device)).detach().cpu()
    return total


def value_head_caveats(
    signals: Sequence[RewardSignal | SignalSettings],
    gamma: float,
    labels: Sequence[str] | None = None,
) -> list[str]:
    """Why one value on the summed reward (SAC's Q) differs from ML-Agents for these signals.

    ML-Agents keeps value heads per signal, with the signal's own ``gamma`` and, for
    ``ignore_done`` signals (curiosity, RND), values bootstrapped through terminal states; SB3's
    SAC learns one Q value of ``extrinsic + sum strength_i r_i`` with the algorithm's ``gamma``
    and cuts every return at an episode end. (The PPO family has per-signal heads:
    :class:`~sb3_ext.reward_signals.value_heads.SignalValueHeads`.) Takes signals or their
    settings; ``labels`` name them in the notes (default: ML-Agents' signal names).
    """
    notes: list[str] = []
    for index, signal in enumerate(signals):
        kind = signal.signal_class if isinstance(signal, SignalSettings) else type(signal)
        label = kind.name if labels is None else labels[index]
        if not np.isclose(signal.gamma, gamma):
            notes.append(
                f"{label}: gamma {signal.gamma} differs from the algorithm's gamma "
                f"{gamma}; its reward is discounted with {gamma} (one Q value for all rewards)."
            )
        if kind.ignore_done:
            notes.append(
                f"{label}: ML-Agents bootstraps its value through terminal states "
                "(ignore_done); here its returns end with the episode (one Q value for all "
                "rewards)."
            )
    return notes


@dataclass
class SignalSettings:
    """A signal's section of ML-Agents' ``reward_signals`` (common keys, ML-Agents' defaults)
    and how to build the signal from it; subclasses name the signal class."""

    strength: float = 1.0
    gamma: float = 0.99
    learning_rate: float = 3e-4
    network_settings: RewardNetworkSettings = field(default_factory=RewardNetworkSettings)

    signal_class: ClassVar[type[RewardSignal]]

    def build(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout | None = None,
        device: th.device | str = "auto",
    ) -> RewardSignal:
        """The signal for a model's observation and action spaces."""
        build: Callable[..., RewardSignal] = self.signal_class
        return build(
            observation_space,
            action_space,
            strength=self.strength,
            gamma=self.gamma,
            learning_rate=self.learning_rate,
            network_settings=self.network_settings,
            device=device,
            **self._signal_arguments(observation_space, action_space),
        )

    def _signal_arguments(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout | None,
    ) -> dict[str, Any]:
        """Constructor arguments only this kind of signal takes (none by default)."""
        del observation_space, action_space
        return {}
