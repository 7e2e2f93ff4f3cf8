"""GAIL and VAIL (Ho & Ermon 2016; Peng et al. 2018) as ML-Agents release 21 computes them.

A discriminator ``D`` tells the expert's transitions from the policy's: a
:class:`NetworkBody` of the observation (with ``use_actions``, the flattened action and the
done flag appended after the encoding), then ``Linear(h, 1)`` (Xavier-uniform x 0.2) and a
sigmoid. VAIL puts a 128-unit stochastic bottleneck in between: ``z = mu + eps sigma`` with
``mu = Linear(h, 128)`` (Kaiming-normal x 0.1) and a learnt ``sigma`` (ones at first); the
reward uses ``z = mu``.

Reward ``r = -log(1 - D(x) (1 - 1e-7))``. One update: draw an expert minibatch of the
policy batch's size with replacement, merge it (the expert's only) into the encoder's
normaliser, and take one Adam step on ``L_GAIL = -mean(log(D(E) + 1e-7) + log(1 - D(P) +
1e-7))`` (VAIL noise on), plus for VAIL ``beta (KL - 0.5)`` with ML-Agents' KL expression, after
which ``beta <- max(0, beta + 0.0005 (KL - 0.5))``, plus the gradient penalty ``10 mean((|g| -
1)^2)``: ``g`` is the gradient of ``sum D`` at an element-wise random interpolation of policy
and expert inputs, taken with respect to the first observation only, its norm over dimension 1
(``sqrt(sum g^2 + 1e-7)``). GAIL's value stops at terminal states (``ignore_done`` False).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch as th
from gymnasium import spaces
from torch import nn

from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import RewardSignal, SignalSettings, Transitions
from sb3_ext.reward_signals.network_body import (
    NetworkBody,
    ObsTensor,
    RewardNetworkSettings,
    kaiming_linear,
    xavier_linear,
)

if TYPE_CHECKING:
    from sb3_ext.imitation.demonstrations import ExpertTransitions, ObservationTransform

# ML-Agents' constants (DiscriminatorNetwork in gail_reward_provider.py).
GRADIENT_PENALTY_WEIGHT = 10.0
Z_SIZE = 128
BETA_STEP = 0.0005  # alpha
MUTUAL_INFORMATION = 0.5  # I_c
EPSILON = 1e-7
ESTIMATOR_GAIN = 0.2
Z_MU_GAIN = 0.1


class DiscriminatorNetwork(nn.Module):
    """ML-Agents' GAIL discriminator (and VAIL bottleneck) for a Gymnasium observation space."""

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        layout: ActionLayout,
        settings: RewardNetworkSettings,
        use_actions: bool,
        use_vail: bool,
    ) -> None:
        super().__init__()
        self.layout = layout
        self.use_actions = use_actions
        self.use_vail = use_vail
        extra = layout.flattened_size + 1 if use_actions else 0
        self.encoder = NetworkBody(observation_space, settings, extra_input_size=extra)
        estimator_input = settings.hidden_units
        if use_vail:
            estimator_input = Z_SIZE
            self.z_sigma = nn.Parameter(th.ones(Z_SIZE))
            self.z_mu = kaiming_linear(settings.hidden_units, Z_SIZE)
            self.z_mu.weight.data.mul_(Z_MU_GAIN)
            self.beta = nn.Parameter(th.tensor(0.0), requires_grad=False)
        estimator = xavier_linear(estimator_input, 1)
        estimator.weight.data.mul_(ESTIMATOR_GAIN)
        self.estimator = nn.Sequential(estimator, nn.Sigmoid())

    def action_input(self, batch: Transitions) -> th.Tensor:
        """``[flattened action, done]``: the extra input with ``use_actions``."""
        if batch.actions is None or batch.dones is None:
            raise ValueError("GAIL with use_actions needs the batch's actions and dones.")
        actions = self.layout.flatten(batch.actions)
        return th.cat([actions, batch.dones.reshape(-1, 1).float()], dim=1)

    def estimate(
        self, observations: ObsTensor, extra: th.Tensor | None, noise: bool
    ) -> tuple[th.Tensor, th.Tensor | None]:
        """``D`` ``[B, 1]`` and VAIL's ``mu`` (None without VAIL)."""
        hidden = self.encoder(observations, extra)
        mu = None
        if self.use_vail:
            mu = self.z_mu(hidden)
            hidden = mu + th.randn_like(mu) * self.z_sigma * float(noise)
        return self.estimator(hidden), mu

    def batch_estimate(self, batch: Transitions, noise: bool) -> tuple[th.Tensor, th.Tensor | None]:
        extra = self.action_input(batch) if self.use_actions else None
        return self.estimate(batch.observations, extra, noise)


def _interpolate(policy: th.Tensor, expert: th.Tensor) -> th.Tensor:
    """``eps * policy + (1 - eps) * expert``, one uniform ``eps`` per element, as a leaf."""
    eps = th.rand(policy.shape, device=policy.device)
    mixed = (eps * policy.float() + (1 - eps) * expert.float()).detach()
    return mixed.requires_grad_(True)


class GAILSignal(RewardSignal):
    """ML-Agents' GAIL reward provider (VAIL with ``use_vail``).

    :param observation_space: the model's observation space (``Box`` / ``Dict`` of ``Box``).
    :param action_space: ``Box``, ``Discrete``, ``MultiDiscrete``, or an :class:`ActionLayout`.
    :param expert: the expert's transitions in the model's spaces
        (:func:`sb3_ext.imitation.load_expert_transitions` reads a ``.demo`` path).
    :param strength: the trainer's multiplier.
    :param gamma: the signal's discount (its own value head in the PPO family).
    :param learning_rate: Adam's (constant) learning rate; ML-Agents' default 3e-4.
    :param network_settings: the discriminator's encoder.
    :param use_actions: discriminate on actions and dones too, not observations only.
    :param use_vail: the variational bottleneck (VAIL).
    :param normalize_expert: maps expert observations as the model sees them (e.g.
        ``VecNormalize.normalize_obs`` when the policy's observations are normalised).
    :param device: where the networks live.
    """

    name: ClassVar[str] = "GAIL"
    ignore_done: ClassVar[bool] = False

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout | None = None,
        expert: ExpertTransitions | None = None,
        strength: float = 1.0,
        gamma: float = 0.99,
        learning_rate: float = 3e-4,
        network_settings: RewardNetworkSettings | None = None,
        use_actions: bool = False,
        use_vail: bool = False,
        normalize_expert: ObservationTransform | None = None,
        device: th.device | str = "auto",
    ) -> None:
        super().__init__(strength, gamma, device)
        if expert is None:
            raise ValueError(
                "GAIL needs the expert's transitions: pass expert=load_expert_transitions("
                "demo_path, model.observation_space, model.action_space)."
            )
        if action_space is None:
            raise ValueError("GAIL needs the model's action space (or an ActionLayout).")
        layout = (
            action_space
            if isinstance(action_space, ActionLayout)
            else ActionLayout.from_space(action_space)
        )
        self.expert = expert
        self.normalize_expert = normalize_expert
        self.learning_rate = float(learning_rate)
        self.network_settings = network_settings or RewardNetworkSettings()
        self.network = DiscriminatorNetwork(
            observation_space, layout, self.network_settings, use_actions, use_vail
        ).to(self.device)
        self.optimizer = th.optim.Adam(self.network.parameters(), lr=self.learning_rate)

    def modules(self) -> dict[str, nn.Module]:
        return {"discriminator": self.network}

    def evaluate(self, batch: Transitions) -> th.Tensor:
        batch = batch.to(self.device)
        with th.no_grad():
            estimate, _ = self.network.batch_estimate(batch, noise=False)
            return -th.log(1.0 - estimate.squeeze(1) * (1.0 - EPSILON))

    def expert_batch(self, size: int) -> Transitions:
        """``size`` expert transitions drawn with replacement, as the model sees them."""
        return self.expert.sample(size, self.device, self.normalize_expert)

    def update(self, batch: Transitions) -> dict[str, float]:
        batch = batch.to(self.device)
        expert = self.expert_batch(len(batch))
        self.network.encoder.update_normalization(expert.observations)
        loss, stats = self.loss(batch, expert)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return stats

    def loss(self, policy: Transitions, expert: Transitions) -> tuple[th.Tensor, dict[str, float]]:
        """ML-Agents' discriminator loss on paired policy and expert batches (updates VAIL's
        beta as ML-Agents does while computing it) and its stats."""
        network = self.network
        policy_estimate, policy_mu = network.batch_estimate(policy, noise=True)
        expert_estimate, expert_mu = network.batch_estimate(expert, noise=True)
        stats = {
            "Policy/GAIL Policy Estimate": float(policy_estimate.mean().item()),
            "Policy/GAIL Expert Estimate": float(expert_estimate.mean().item()),
        }
        gail_loss = -(
            th.log(expert_estimate + EPSILON) + th.log(1.0 - policy_estimate + EPSILON)
        ).mean()
        stats["Losses/GAIL Loss"] = float(gail_loss.item())
        total = gail_loss
        if network.use_vail:
            assert policy_mu is not None and expert_mu is not None
            sigma_squared = network.z_sigma**2
            kl = th.mean(
                -th.sum(
                    1
                    + sigma_squared.log()
                    - 0.5 * expert_mu**2
                    - 0.5 * policy_mu**2
                    - sigma_squared,
                    dim=1,
                )
            )
            total = total + network.beta * (kl - MUTUAL_INFORMATION)
            with th.no_grad():
                stepped = network.beta + BETA_STEP * (kl - MUTUAL_INFORMATION)
                network.beta.data = th.clamp(stepped, min=0.0)
            stats["Policy/GAIL Beta"] = float(network.beta.item())
            stats["Losses/GAIL KL Loss"] = float(kl.item())
        penalty = GRADIENT_PENALTY_WEIGHT * self.gradient_penalty(policy, expert)
        stats["Policy/GAIL Grad Mag Loss"] = float(penalty.item())
        return total + penalty, stats

    def gradient_penalty(self, policy: Transitions, expert: Transitions) -> th.Tensor:
        """``mean((sqrt(sum_dim1 g^2 + 1e-7) - 1)^2)``, ``g`` = d sum D / d (first observation)
        at an element-wise interpolation of the two batches (actions and dones too)."""
        network = self.network
        mixed: ObsTensor
        if isinstance(policy.observations, Mapping):
            assert isinstance(expert.observations, Mapping)
            mixed = {
                key: _interpolate(value, expert.observations[key])
                for key, value in policy.observations.items()
            }
            first = mixed[next(iter(network.encoder.keys or mixed))]
        else:
            assert not isinstance(expert.observations, Mapping)
            mixed = first = _interpolate(policy.observations, expert.observations)
        extra = None
        if network.use_actions:
            extra = _interpolate(network.action_input(policy), network.action_input(expert))
        estimate, _ = network.estimate(mixed, extra, noise=True)
        gradient = th.autograd.grad(estimate.squeeze(1).sum(), first, create_graph=True)[0]
        norm = th.sqrt(th.sum(gradient**2, dim=1) + EPSILON)
        return th.mean((norm - 1.0) ** 2)


@dataclass
class GAILSettings(SignalSettings):
    """ML-Agents' ``GAILSettings`` (``reward_signals.gail``): the expert's transitions (read
    from ``demo_path`` for the model's spaces when built), ``use_actions``, ``use_vail``."""

    learning_rate: float = 3e-4
    demo_path: str = ""
    use_actions: bool = False
    use_vail: bool = False
    # Set by whoever builds the signal when the model's observations are normalised.
    normalize_expert: ObservationTransform | None = field(default=None, repr=False)

    signal_class: ClassVar[type[RewardSignal]] = GAILSignal

    def _signal_arguments(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any] | ActionLayout | None,
    ) -> dict[str, Any]:
        """The expert's transitions, read from ``demo_path`` for the model's spaces."""
        from sb3_ext.imitation.demonstrations import load_expert_transitions

        if action_space is None:
            raise ValueError("GAIL needs the model's action space.")
        return {
            "expert": load_expert_transitions(self.demo_path, observation_space, action_space),
            "use_actions": self.use_actions,
            "use_vail": self.use_vail,
            "normalize_expert": self.normalize_expert,
        }
