"""Curiosity (ICM, Pathak et al. 2017) as ML-Agents release 21 computes it.

Networks (``h = hidden_units``): a state encoder ``phi`` (:class:`NetworkBody`, shared by
``s`` and ``s'``); an inverse model ``[phi(s), phi(s')] -> 256 (Swish) -> action`` (a linear
head per action part, per-branch softmax for discrete branches); a forward model
``[phi(s), flat action] -> 256 (Swish) -> h``. The 256-unit layers are Kaiming-normal as
ML-Agents' ``LinearEncoder``; the output heads are Xavier-uniform as its ``linear_layer``.

Reward ``r = sum_j 0.5 (phi(s')_j - f(phi(s), a)_j)^2``, clipped at ``1/strength`` and zero
until the first update. Loss ``10 (0.2 L_forward + 0.8 L_inverse)``: ``L_forward`` is the
mean unclipped reward (gradients reach ``phi`` through prediction and target alike),
``L_inverse`` the mean squared error of continuous actions plus the cross-entropy of the
branches. One Adam step per update. The state normaliser (``normalize``) is never updated,
as in ML-Agents.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch as th
from gymnasium import spaces
from torch import nn

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import RewardSignal, SignalSettings, Transitions
from sb3_ext.reward_signals.network_body import (
    NetworkBody,
    RewardNetworkSettings,
    dense_stack,
    xavier_linear,
)

# ML-Agents' constants (curiosity_reward_provider.py).
FORWARD_LOSS_WEIGHT = 0.2  # beta
LOSS_MULTIPLIER = 10.0
MODEL_HIDDEN_UNITS = 256
LOG_EPSILON = 1e-10


class CuriosityNetwork(nn.Module):
    """State encoder, inverse model and forward model of ML-Agents' ``CuriosityNetwork``."""

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        layout: ActionLayout,
        settings: RewardNetworkSettings,
    ) -> None:
        super().__init__()
        self.layout = layout
        h = settings.hidden_units
        self.state_encoder = NetworkBody(observation_space, settings)
        self.inverse_hidden = dense_stack(2 * h, 1, MODEL_HIDDEN_UNITS)
        self.continuous_head = (
            xavier_linear(MODEL_HIDDEN_UNITS, layout.continuous_size)
            if layout.continuous_size
            else None
        )
        self.discrete_head = (
            xavier_linear(MODEL_HIDDEN_UNITS, sum(layout.discrete_branches))
            if layout.discrete_size
            else None
        )
        self.forward_model = nn.Sequential(
            *dense_stack(h + layout.flattened_size, 1, MODEL_HIDDEN_UNITS),
            xavier_linear(MODEL_HIDDEN_UNITS, h),
        )

    def encode(self, batch: Transitions) -> tuple[th.Tensor, th.Tensor]:
        """``phi(s)``, ``phi(s')``."""
        if batch.next_observations is None or batch.actions is None:
            raise ValueError("Curiosity needs next_observations and actions in the batch.")
        return self.state_encoder(batch.observations), self.state_encoder(batch.next_observations)

    def prediction_error(
        self, state: th.Tensor, next_state: th.Tensor, actions: th.Tensor
    ) -> th.Tensor:
        """Unclipped reward ``sum_j 0.5 (phi(s') - f(phi(s), a))_j^2``, ``[B]``."""
        predicted = self.forward_model(th.cat([state, self.layout.flatten(actions)], dim=1))
        return th.sum(0.5 * (next_state - predicted) ** 2, dim=1)

    def inverse_loss(
        self, state: th.Tensor, next_state: th.Tensor, actions: th.Tensor
    ) -> th.Tensor:
        """Mean squared error (continuous) plus mean cross-entropy over branches (discrete)."""
        hidden = self.inverse_hidden(th.cat([state, next_state], dim=1))
        continuous, discrete = self.layout.split(actions)
        loss = th.zeros((), device=state.device)
        if self.continuous_head is not None and continuous is not None:
            predicted = self.continuous_head(hidden)
            loss = loss + th.mean(th.sum((continuous - predicted) ** 2, dim=1))
        if self.discrete_head is not None and discrete is not None:
            logits = self.discrete_head(hidden)
            probs = th.cat(
                [
                    th.softmax(b, dim=1)
                    for b in th.split(logits, list(self.layout.discrete_branches), dim=1)
                ],
                dim=1,
            )
            one_hot = self.layout.one_hot(discrete)
            loss = loss + th.mean(th.sum(-th.log(probs + LOG_EPSILON) * one_hot, dim=1))
        return loss


class CuriositySignal(RewardSignal):
    """ML-Agents' curiosity reward provider.

    :param observation_space: the model's observation space (``Box`` / ``Dict`` of ``Box``).
    :param action_space: ``Box``, ``Discrete``, ``MultiDiscrete``, or an :class:`ActionLayout`.
    :param strength: the trainer's multiplier; also sets the reward clip ``1/strength``.
    :param gamma: ML-Agents' per-signal discount (see ``value_head_caveats``).
    :param learning_rate: Adam's (constant) learning rate.
    :param network_settings: the state encoder's settings.
    :param device: where the networks live (``"auto"``: CUDA when available).
    """

    name: ClassVar[str] = "Curiosity"
    ignore_done: ClassVar[bool] = True

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout,
        strength: float = 1.0,
        gamma: float = 0.99,
        learning_rate: float = 3e-4,
        network_settings: RewardNetworkSettings | None = None,
        device: th.device | str = "auto",
    ) -> None:
        super().__init__(strength, gamma, device)
        layout = (
            action_space
            if isinstance(action_space, ActionLayout)
            else ActionLayout.from_space(action_space)
        )
        self.action_layout = layout
        self.learning_rate = float(learning_rate)
        self.network_settings = network_settings or RewardNetworkSettings()
        self.network = CuriosityNetwork(observation_space, layout, self.network_settings)
        self.network.to(self.device)
        self.optimizer = th.optim.Adam(self.network.parameters(), lr=self.learning_rate)
        self.has_updated_once = False

    @property
    def reward_clip(self) -> float:
        """``1/strength``: the largest raw reward (so a scaled reward is at most 1)."""
        return 1.0 / self.strength if self.strength != 0 else math.inf

    def modules(self) -> dict[str, nn.Module]:
        return {"network": self.network}

    def evaluate(self, batch: Transitions) -> th.Tensor:
        """``min(prediction error, 1/strength)``, times 0 before the first update."""
        batch = batch.to(self.device)
        assert batch.actions is not None
        with th.no_grad():
            state, next_state = self.network.encode(batch)
            reward = self.network.prediction_error(state, next_state, batch.actions)
        reward = th.clamp(reward, max=self.reward_clip)
        return reward * float(self.has_updated_once)

    def losses(self, batch: Transitions) -> tuple[th.Tensor, th.Tensor]:
        """Forward and inverse losses of ``batch`` (with gradients)."""
        batch = batch.to(self.device)
        assert batch.actions is not None
        state, next_state = self.network.encode(batch)
        forward = th.mean(self.network.prediction_error(state, next_state, batch.actions))
        inverse = self.network.inverse_loss(state, next_state, batch.actions)
        return forward, inverse

    def update(self, batch: Transitions) -> dict[str, float]:
        self.has_updated_once = True
        forward, inverse = self.losses(batch)
        loss = LOSS_MULTIPLIER * (
            FORWARD_LOSS_WEIGHT * forward + (1.0 - FORWARD_LOSS_WEIGHT) * inverse
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return {
            "Losses/Curiosity Forward Loss": float(forward.item()),
            "Losses/Curiosity Inverse Loss": float(inverse.item()),
        }

    def _extra_state(self) -> dict[str, Any]:
        return {"has_updated_once": self.has_updated_once}

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        self.has_updated_once = bool(state.get("has_updated_once", False))


@dataclass
class CuriositySettings(SignalSettings):
    """ML-Agents' ``CuriositySettings`` (``reward_signals.curiosity``) and its defaults."""

    signal_class: ClassVar[type[RewardSignal]] = CuriositySignal
