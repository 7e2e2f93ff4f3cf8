"""Random Network Distillation (Burda et al. 2018) as ML-Agents release 21 computes it.

Two :class:`NetworkBody` encoders of the current observation: a randomly initialised,
never-trained target ``g`` and a predictor ``g_hat`` trained towards it. Reward
``r = sum_j (g_hat(s)_j - g(s)_j)^2`` on the current observation ``s`` (no 0.5, no clip, no
warm-up); loss: its mean, the target under ``no_grad``; one Adam step per update. With
``normalize`` every forward pass (``evaluate`` and ``update``, both networks) merges the batch
into the network's normaliser after encoding it, as ML-Agents does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from torch import nn

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import RewardSignal, SignalSettings, Transitions
from sb3_ext.reward_signals.network_body import NetworkBody, RewardNetworkSettings


class RNDSignal(RewardSignal):
    """ML-Agents' RND reward provider.

    :param observation_space: the model's observation space (``Box`` / ``Dict`` of ``Box``).
    :param action_space: unused (RND reads observations only); kept for a uniform signature.
    :param strength: the trainer's multiplier.
    :param gamma: ML-Agents' per-signal discount (see ``value_head_caveats``).
    :param learning_rate: Adam's (constant) learning rate; ML-Agents' default 1e-4.
    :param network_settings: settings of both encoders.
    :param device: where the networks live (``"auto"``: CUDA when available).
    """

    name: ClassVar[str] = "RND"
    ignore_done: ClassVar[bool] = True

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout | None = None,
        strength: float = 1.0,
        gamma: float = 0.99,
        learning_rate: float = 1e-4,
        network_settings: RewardNetworkSettings | None = None,
        device: th.device | str = "auto",
    ) -> None:
        super().__init__(strength, gamma, device)
        self.learning_rate = float(learning_rate)
        self.network_settings = network_settings or RewardNetworkSettings()
        self.target = NetworkBody(observation_space, self.network_settings).to(self.device)
        self.predictor = NetworkBody(observation_space, self.network_settings).to(self.device)
        self.target.requires_grad_(False)
        self.optimizer = th.optim.Adam(self.predictor.parameters(), lr=self.learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"predictor": self.predictor, "target": self.target}

    @staticmethod
    def _encode(network: NetworkBody, batch: Transitions) -> th.Tensor:
        """Encode, then merge the batch into the normaliser (ML-Agents' order)."""
        out = network(batch.observations)
        network.update_normalization(batch.observations)
        return out

    def evaluate(self, batch: Transitions) -> th.Tensor:
        batch = batch.to(self.device)
        with th.no_grad():
            target = self._encode(self.target, batch)
            prediction = self._encode(self.predictor, batch)
            return th.sum((prediction - target) ** 2, dim=1)

    def update(self, batch: Transitions) -> dict[str, float]:
        batch = batch.to(self.device)
        with th.no_grad():
            target = self._encode(self.target, batch)
        prediction = self._encode(self.predictor, batch)
        loss = th.mean(th.sum((prediction - target) ** 2, dim=1))
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {"Losses/RND Loss": float(loss.item())}


@dataclass
class RNDSettings(SignalSettings):
    """ML-Agents' ``RNDSettings`` (``reward_signals.rnd``): learning rate 1e-4 by default."""

    learning_rate: float = 1e-4

    signal_class: ClassVar[type[RewardSignal]] = RNDSignal
