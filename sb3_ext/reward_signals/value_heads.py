"""ML-Agents' per-signal value heads for the intrinsic signals of an on-policy algorithm.

ML-Agents' PPO critic has one value head per reward signal on a shared body, and computes
each signal's GAE with the signal's own ``gamma``; curiosity and RND (``ignore_done``) keep
bootstrapping through the end of an episode, so ending it does not cost their future reward.
The policy then follows the mean of the per-signal advantages.

SB3's policy keeps its one value head for the extrinsic reward (its own GAE, timeouts
bootstrapped as SB3 does). :class:`SignalValueHeads` is the rest of ML-Agents' critic: a
:class:`~sb3_ext.reward_signals.network_body.NetworkBody` shared by one linear head per
intrinsic signal, with its own Adam optimiser. :func:`signal_advantages` is ML-Agents' GAE of
one signal over a rollout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.utils import get_device
from torch import nn

from sb3_ext.reward_signals.base import obs_to
from sb3_ext.reward_signals.network_body import (
    NetworkBody,
    ObsTensor,
    RewardNetworkSettings,
    xavier_linear,
)

DEFAULT_LEARNING_RATE = 3e-4


class _ValueNetwork(nn.Module):
    def __init__(
        self, observation_space: spaces.Space[Any], n_heads: int, settings: RewardNetworkSettings
    ) -> None:
        super().__init__()
        self.body = NetworkBody(observation_space, settings)
        self.heads = xavier_linear(self.body.output_size, n_heads)

    def forward(self, observations: ObsTensor) -> th.Tensor:
        out: th.Tensor = self.heads(self.body(observations))
        return out


class SignalValueHeads:
    """Value heads of the intrinsic signals ``names``, one output column each.

    :param observation_space: the model's observation space (``Box`` / ``Dict`` of ``Box``).
    :param names: the signals' names, in the order of the output columns.
    :param settings: the shared body (ML-Agents uses the trainer's ``network_settings``).
    :param learning_rate: Adam's learning rate; ``None`` follows the policy optimiser's
        current rate at each update (ML-Agents trains actor and critic with one optimiser).
    :param device: where the network lives.
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        names: Sequence[str],
        settings: RewardNetworkSettings | None = None,
        learning_rate: float | None = None,
        device: th.device | str = "auto",
    ) -> None:
        if not names:
            raise ValueError("SignalValueHeads needs at least one signal name.")
        self.names = tuple(names)
        self.settings = settings or RewardNetworkSettings()
        self.learning_rate = learning_rate
        self.device: th.device = get_device(device)
        self.network = _ValueNetwork(observation_space, len(self.names), self.settings).to(
            self.device
        )
        self.optimizer = th.optim.Adam(
            self.network.parameters(),
            lr=DEFAULT_LEARNING_RATE if learning_rate is None else learning_rate,
        )

    def values(self, observations: ObsTensor) -> th.Tensor:
        """``[B, len(names)]`` value estimates (no gradient)."""
        with th.no_grad():
            return self.network(obs_to(observations, self.device))

    def update_normalization(self, observations: ObsTensor) -> None:
        """Merge a batch into the body's normalisers (no-op without ``normalize``)."""
        self.network.body.update_normalization(obs_to(observations, self.device))

    def update(
        self,
        observations: ObsTensor,
        returns: th.Tensor,
        old_values: th.Tensor,
        clip_range: float | None = None,
        learning_rate: float | None = None,
    ) -> float:
        """One Adam step on ML-Agents' value loss, the mean over heads of the squared error;
        with ``clip_range``, its trust-region form ``max((R - V)^2, (R - V_clipped)^2)``, V
        clipped to ``old_values +- clip_range``. ``learning_rate`` is used when the heads
        have none of their own."""
        if self.learning_rate is None and learning_rate is not None:
            for group in self.optimizer.param_groups:
                group["lr"] = learning_rate
        returns, old_values = returns.to(self.device), old_values.to(self.device)
        predicted = self.network(obs_to(observations, self.device))
        loss_terms = (returns - predicted) ** 2
        if clip_range is not None:
            clipped = old_values + th.clamp(predicted - old_values, -clip_range, clip_range)
            loss_terms = th.maximum(loss_terms, (returns - clipped) ** 2)
        loss = loss_terms.mean(dim=0).mean()
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def state_dict(self) -> dict[str, Any]:
        """Network (with normalisers), optimiser state and the head names."""
        return {
            "names": list(self.names),
            "network": self.network.state_dict(),
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` saved for the same signals and settings."""
        if list(state["names"]) != list(self.names):
            raise ValueError(
                f"value heads were saved for signals {list(state['names'])}, these are for "
                f"{list(self.names)}."
            )
        self.network.load_state_dict(state["network"])
        self.optimizer.load_state_dict(state["optimizer"])


def signal_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    episode_ends: np.ndarray,
    bootstrap: np.ndarray,
    gamma: float,
    gae_lambda: float,
) -> np.ndarray:
    """GAE of one signal over a ``[n_steps, n_envs]`` rollout, as ML-Agents computes it.

    ``delta_t = r_t + gamma V(s'_t) bootstrap_t - V(s_t)``, where ``s'_t`` is the observation
    the step led to (the final one where an episode ended) and ``bootstrap_t`` is 0 only
    where the signal's value must not continue (a terminal step of a signal without
    ``ignore_done``); the ``gamma * lambda`` trace stops at every episode end and at the end
    of the rollout.
    """
    advantages = np.zeros_like(rewards, dtype=np.float32)
    running = np.zeros(rewards.shape[1], dtype=np.float32)
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + gamma * next_values[t] * bootstrap[t] - values[t]
        continues = 1.0 - episode_ends[t].astype(np.float32)
        running = delta + gamma * gae_lambda * continues * running
        advantages[t] = running
    return advantages
