"""Networks of the discrete SAC: actor, two Q critics, a state-value network and its target.

As in ML-Agents' SAC, every network has its own body (features extractor and MLP) and takes
only the observation: the actor outputs one logit per action of every branch (masked
per-branch categoricals), Q1 and Q2 one value per action of every branch, V and the target V
one value. ``MlpPolicy``, ``CnnPolicy`` and ``MultiInputPolicy`` differ only in the default
features extractor, as in SB3.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BaseModel, BasePolicy
from stable_baselines3.common.torch_layers import (
    BaseFeaturesExtractor,
    CombinedExtractor,
    FlattenExtractor,
    NatureCNN,
    create_mlp,
    get_actor_critic_arch,
)
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import nn

from sb3_ext.algorithms.discrete_sac_losses import (
    BranchPolicy,
    masked_branch_policy,
    sample_actions,
)
from sb3_ext.algorithms.masked_replay_buffer import action_branches

# ML-Agents initialises its discrete action heads Kaiming-normal scaled by 0.1 (zero bias), so
# the first policy is close to uniform.
ACTION_HEAD_GAIN = 0.1


class DiscreteActor(BasePolicy):
    """Observation -> ``latent_pi`` MLP -> ``action_net`` (one logit per action, all branches)."""

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        self.branches = action_branches(action_space)
        self.net_arch = net_arch
        self.features_dim = features_dim
        self.activation_fn = activation_fn
        self.latent_pi = nn.Sequential(*create_mlp(features_dim, -1, net_arch, activation_fn))
        self.action_net = nn.Linear(net_arch[-1] if net_arch else features_dim, sum(self.branches))
        nn.init.kaiming_normal_(self.action_net.weight, nonlinearity="linear")
        with th.no_grad():
            self.action_net.weight.mul_(ACTION_HEAD_GAIN)
        nn.init.zeros_(self.action_net.bias)
        self._masks: th.Tensor | None = None

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            features_dim=self.features_dim,
            activation_fn=self.activation_fn,
            features_extractor=self.features_extractor,
        )
        return data

    def branch_policy(self, obs: PyTorchObs, action_masks: th.Tensor | None) -> BranchPolicy:
        """The masked per-branch distribution (``action_masks``: 1 allowed, 0 masked)."""
        features = self.extract_features(obs, self.features_extractor)
        logits = self.action_net(self.latent_pi(features))
        return masked_branch_policy(logits, action_masks, self.branches)

    def forward(
        self,
        obs: PyTorchObs,
        action_masks: th.Tensor | None = None,
        deterministic: bool = False,
    ) -> th.Tensor:
        """``[batch, branches]`` actions: sampled, or each branch's most likely one."""
        return sample_actions(self.branch_policy(obs, action_masks), deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self(observation, self._masks, deterministic)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` with ``action_masks`` (``[n, sum(branches)]``, True = allowed)."""
        if action_masks is not None:
            flat = np.asarray(action_masks, dtype=np.float32).reshape(-1, sum(self.branches))
            self._masks = th.as_tensor(flat, device=self.device)
        try:
            return super().predict(observation, state, episode_start, deterministic)
        finally:
            self._masks = None


class StateNetwork(BaseModel):
    """Observation -> ``out_dim`` values, no action input (Q: one per action; V: one).

    With ``share_features_extractor`` the extractor is the actor's and receives no gradient
    from this network's losses (as in SB3's SAC).
    """

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        net_arch: list[int],
        features_extractor: BaseFeaturesExtractor,
        features_dim: int,
        out_dim: int,
        activation_fn: type[nn.Module] = nn.ReLU,
        normalize_images: bool = True,
        share_features_extractor: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor=features_extractor,
            normalize_images=normalize_images,
        )
        self.share_features_extractor = share_features_extractor
        self.net = nn.Sequential(*create_mlp(features_dim, out_dim, net_arch, activation_fn))

    def forward(self, obs: PyTorchObs) -> th.Tensor:
        assert self.features_extractor is not None
        grad = th.is_grad_enabled() and not self.share_features_extractor
        with th.set_grad_enabled(grad):
            features = self.extract_features(obs, self.features_extractor)
        values: th.Tensor = self.net(features)
        return values


class DiscreteSACCritic(nn.Module):
    """Q1, Q2 and V, trained together by one optimizer (ML-Agents' "value" optimizer)."""

    optimizer: th.optim.Optimizer

    def __init__(self, q_networks: Sequence[StateNetwork], value: StateNetwork) -> None:
        super().__init__()
        self.q_networks = nn.ModuleList(q_networks)
        self.value = value

    def q_values(self, obs: PyTorchObs) -> list[th.Tensor]:
        """``[batch, sum(branches)]`` from each Q network."""
        return [q(obs) for q in self.q_networks]

    def set_training_mode(self, mode: bool) -> None:
        self.train(mode)


class DiscreteSACPolicy(BasePolicy):
    """Actor, critic (Q1, Q2, V) and target V for :class:`DiscreteSAC`.

    ``net_arch``: a list (actor and critics alike) or ``{"pi": [...], "qf": [...]}`` (``qf``
    for Q1, Q2 and V); SB3's SAC default ``[256, 256]``. The target V starts as a copy of V.
    """

    actor: DiscreteActor
    critic: DiscreteSACCritic
    value_target: StateNetwork
    # The extractor when none is given: what the Mlp, Cnn and MultiInput aliases differ in.
    default_features_extractor: ClassVar[type[BaseFeaturesExtractor]] = FlattenExtractor

    def __init__(
        self,
        observation_space: spaces.Space[Any],
        action_space: spaces.Space[Any],
        lr_schedule: Schedule,
        net_arch: list[int] | dict[str, list[int]] | None = None,
        activation_fn: type[nn.Module] = nn.ReLU,
        features_extractor_class: type[BaseFeaturesExtractor] | None = None,
        features_extractor_kwargs: dict[str, Any] | None = None,
        normalize_images: bool = True,
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
        share_features_extractor: bool = False,
    ) -> None:
        super().__init__(
            observation_space,
            action_space,
            features_extractor_class or self.default_features_extractor,
            features_extractor_kwargs,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            normalize_images=normalize_images,
        )
        self.branches = action_branches(action_space)
        if net_arch is None:
            net_arch = [256, 256]
        self.net_arch = net_arch
        self.activation_fn = activation_fn
        self.share_features_extractor = share_features_extractor
        self.actor_arch, self.critic_arch = get_actor_critic_arch(net_arch)
        self._build(lr_schedule)

    def _net_kwargs(self, arch: list[int]) -> dict[str, Any]:
        return {
            "observation_space": self.observation_space,
            "action_space": self.action_space,
            "net_arch": arch,
            "activation_fn": self.activation_fn,
            "normalize_images": self.normalize_images,
        }

    def _state_network(
        self, out_dim: int, features_extractor: BaseFeaturesExtractor | None
    ) -> StateNetwork:
        kwargs = self._update_features_extractor(
            self._net_kwargs(self.critic_arch), features_extractor
        )
        shared = features_extractor is not None
        return StateNetwork(**kwargs, out_dim=out_dim, share_features_extractor=shared).to(
            self.device
        )

    def _build(self, lr_schedule: Schedule) -> None:
        actor_kwargs = self._update_features_extractor(self._net_kwargs(self.actor_arch))
        self.actor = DiscreteActor(**actor_kwargs).to(self.device)
        self.actor.optimizer = self.optimizer_class(
            self.actor.parameters(),
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        shared = self.actor.features_extractor if self.share_features_extractor else None
        width = sum(self.branches)
        self.critic = DiscreteSACCritic(
            [self._state_network(width, shared), self._state_network(width, shared)],
            self._state_network(1, shared),
        )
        parameters = [
            param
            for name, param in self.critic.named_parameters()
            if not (shared is not None and "features_extractor" in name)
        ]
        self.critic.optimizer = self.optimizer_class(
            parameters,
            lr=lr_schedule(1),  # type: ignore[call-arg]
            **self.optimizer_kwargs,
        )
        self.value_target = self._state_network(1, None)
        self.value_target.load_state_dict(self.critic.value.state_dict())
        self.value_target.set_training_mode(False)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            net_arch=self.net_arch,
            activation_fn=self.activation_fn,
            lr_schedule=self._dummy_schedule,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            features_extractor_class=self.features_extractor_class,
            features_extractor_kwargs=self.features_extractor_kwargs,
            share_features_extractor=self.share_features_extractor,
        )
        return data

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self._predict(obs, deterministic=deterministic)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> th.Tensor:
        return self.actor(observation, None, deterministic)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """SB3's ``predict`` with ``action_masks`` (``[n, sum(branches)]``, True = allowed);
        only the actor acts (and is put in evaluation mode)."""
        return self.actor.predict(observation, state, episode_start, deterministic, action_masks)

    def set_training_mode(self, mode: bool) -> None:
        self.actor.set_training_mode(mode)
        self.critic.set_training_mode(mode)
        self.training = mode


class DiscreteSACCnnPolicy(DiscreteSACPolicy):
    """:class:`DiscreteSACPolicy` with SB3's ``NatureCNN`` for image observations."""

    default_features_extractor = NatureCNN


class DiscreteSACMultiInputPolicy(DiscreteSACPolicy):
    """:class:`DiscreteSACPolicy` with SB3's ``CombinedExtractor`` for Dict observations."""

    default_features_extractor = CombinedExtractor


MlpPolicy = DiscreteSACPolicy
CnnPolicy = DiscreteSACCnnPolicy
MultiInputPolicy = DiscreteSACMultiInputPolicy
