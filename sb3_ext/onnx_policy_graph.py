"""Torch modules that rebuild an SB3 policy's inference path with ML-Agents' ONNX interface.

:func:`build_policy_graph` takes the policy's own modules (features extractor, MLP extractor,
LSTM, action heads) and wraps them in a :class:`PolicyGraph` whose ``forward`` takes
``obs_0..obs_n[, action_masks][, recurrent_in]`` and returns ML-Agents' outputs in order.
Tracing it with ``torch.onnx.export`` gives the file :mod:`sb3_ext.onnx_export` writes.

Observations arrive as Unity sends them to a model: vector observations as they are, visual
ones as float32 in [0, 1], channel-first. Each input is mapped onto what the policy saw in
training: scaled to the training observation space (x255 for ``uint8`` image spaces),
normalised with the VecNormalize statistics, then preprocessed as SB3 does (/255 for image
spaces when the policy normalises images). Consecutive scalings are folded into one.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy, BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecNormalize
from stable_baselines3.sac.policies import LOG_STD_MAX, LOG_STD_MIN
from torch import nn

from sb3_ext.algorithms.discrete_sac_policy import DiscreteActor
from sb3_ext.onnx_interface import MODEL_EXPORT_VERSION
from unity_gym.base_env import BehaviorSpec
from unity_gym.spaces import SpaceConverter

Normalization = VecNormalize | RunningMeanStd | Mapping[str, RunningMeanStd]

MASK_PENALTY = 1e8  # masked logits become logit*0 - 1e8, as ML-Agents' action model does


@dataclass(frozen=True)
class _ObsStats:
    mean: np.ndarray
    var: np.ndarray
    epsilon: float
    clip: float


def _normalization_stats(
    normalization: Normalization | None, keys: Sequence[str] | None
) -> list[_ObsStats | None]:
    """Per-observation normalisation statistics (None: not normalised), in spec order."""
    n = 1 if keys is None else len(keys)
    if normalization is None:
        return [None] * n
    epsilon, clip = 1e-8, 10.0  # VecNormalize's defaults, for a bare obs_rms
    rms: Any = normalization
    if isinstance(normalization, VecNormalize):
        if not normalization.norm_obs:
            return [None] * n
        epsilon, clip = float(normalization.epsilon), float(normalization.clip_obs)
        rms = normalization.obs_rms

    def stats(r: RunningMeanStd) -> _ObsStats:
        mean, var = np.asarray(r.mean, np.float64), np.asarray(r.var, np.float64)
        return _ObsStats(mean, var, epsilon, clip)

    if isinstance(rms, RunningMeanStd):
        if keys is not None:
            raise ValueError(
                "The normalisation has one set of statistics; the model has Dict observations."
            )
        return [stats(rms)]
    if isinstance(rms, Mapping):
        if keys is None:
            raise ValueError("The normalisation is per Dict key; the model has one observation.")
        unknown = sorted(set(rms) - set(keys))
        if unknown:
            raise ValueError(f"Normalisation statistics for unknown observation keys {unknown}.")
        return [stats(rms[k]) if k in rms else None for k in keys]
    raise TypeError(f"Unsupported normalization {type(normalization).__name__}.")


class ObservationInput(nn.Module):
    """One observation input: Unity's value -> the tensor the features extractor saw."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        shape: tuple[int, ...],
        env_scale: float,
        stats: _ObsStats | None,
        network_scale: float,
    ) -> None:
        super().__init__()
        self.scale: float | None = None
        self.post_scale: float | None = None
        self.clip: float | None = None
        if stats is None:
            scale = env_scale * network_scale
            self.scale = None if scale == 1.0 else scale
            return
        if stats.mean.shape not in (shape, ()):
            raise ValueError(
                f"Normalisation statistics have shape {stats.mean.shape}, the observation {shape}."
            )
        # clip((u * env_scale - mean) / std) == clip((u - mean / env_scale) / (std / env_scale))
        std = np.sqrt(stats.var + stats.epsilon)
        mean = np.broadcast_to(stats.mean / env_scale, shape).astype(np.float32)
        std = np.broadcast_to(std / env_scale, shape).astype(np.float32)
        self.register_buffer("mean", torch.from_numpy(mean.copy()))
        self.register_buffer("std", torch.from_numpy(std.copy()))
        self.clip = stats.clip
        self.post_scale = None if network_scale == 1.0 else network_scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.clip is not None:
            x = torch.clamp((x - self.mean) / self.std, -self.clip, self.clip)
            if self.post_scale is not None:
                x = x * self.post_scale
        elif self.scale is not None:
            x = x * self.scale
        return x


class ContinuousHead(nn.Module):
    """Gaussian actions: ``(sampled, deterministic)``, squashed by tanh or clipped to [-1, 1].

    The standard deviation is a constant (PPO), a function of the latent (SAC), or gSDE's
    ``sqrt(latent**2 @ std**2 + eps)``; sampled actions draw fresh noise each call.
    """

    std: torch.Tensor
    sde_variance: torch.Tensor

    def __init__(
        self,
        mean_net: nn.Module,
        squash: bool,
        *,
        std: torch.Tensor | None = None,
        log_std_net: nn.Module | None = None,
        sde_variance: torch.Tensor | None = None,
        sde_epsilon: float = 1e-6,
    ) -> None:
        super().__init__()
        self.mean_net = mean_net
        self.squash = squash
        self.log_std_net = log_std_net
        self.sde_epsilon = sde_epsilon
        self.has_std = std is not None
        self.has_sde = sde_variance is not None
        if std is not None:
            self.register_buffer("std", std.detach().reshape(1, -1).clone())
        if sde_variance is not None:
            self.register_buffer("sde_variance", sde_variance.detach().clone())

    def forward(self, latent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.mean_net(latent)
        if self.has_std:
            std = self.std
        elif self.has_sde:
            std = torch.sqrt(torch.matmul(latent * latent, self.sde_variance) + self.sde_epsilon)
        else:
            assert self.log_std_net is not None
            log_std = self.log_std_net(latent)
            std = torch.exp(torch.clamp(log_std, LOG_STD_MIN, LOG_STD_MAX))  # as SAC's actor
        sample = mean + torch.randn_like(mean) * std
        if self.squash:
            return torch.tanh(sample), torch.tanh(mean)
        return torch.clamp(sample, -1.0, 1.0), torch.clamp(mean, -1.0, 1.0)


class DiscreteHead(nn.Module):
    """Masked categorical branches: ``(sampled, deterministic)`` int64 ``[batch, branches]``.

    As ML-Agents does: ``logits * mask - (1 - mask) * 1e8`` per branch, then Softmax and
    Multinomial for samples, ArgMax for the deterministic action.
    """

    def __init__(self, logits_net: nn.Module, branches: Sequence[int]) -> None:
        super().__init__()
        self.logits_net = logits_net
        self.branches = tuple(int(b) for b in branches)

    def forward(
        self, latent: torch.Tensor, masks: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.logits_net(latent)
        samples, modes = [], []
        start = 0
        for size in self.branches:
            branch = logits[:, start : start + size]
            mask = masks[:, start : start + size]
            start += size
            masked = branch * mask - (1.0 - mask) * MASK_PENALTY
            probs = torch.softmax(masked, dim=1)
            samples.append(torch.multinomial(probs, 1))
            modes.append(torch.argmax(masked, dim=1, keepdim=True))
        return torch.cat(samples, dim=1), torch.cat(modes, dim=1)


class ActorCriticBody(nn.Module):
    """Features extractor then the actor half of an MLP extractor (PPO, A2C, MaskablePPO)."""

    mlp_extractor: Any

    def __init__(self, features_extractor: nn.Module, mlp_extractor: nn.Module) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.mlp_extractor = mlp_extractor

    def forward(self, obs: Any) -> torch.Tensor:
        return cast(torch.Tensor, self.mlp_extractor.forward_actor(self.features_extractor(obs)))


class RecurrentBody(nn.Module):
    """Features extractor, one LSTM step, then the actor MLP (sb3-contrib RecurrentPPO).

    Memory layout (``[batch, 1, memory_size]``, ``memory_size = 2 * layers * hidden``): the
    hidden states of layers 0..L-1, then the cell states of layers 0..L-1, each ``hidden``
    wide. With one layer this is ML-Agents' own layout ``[h, c]``.
    """

    mlp_extractor: Any

    def __init__(
        self, features_extractor: nn.Module, lstm: nn.LSTM, mlp_extractor: nn.Module
    ) -> None:
        super().__init__()
        if lstm.batch_first or lstm.bidirectional:
            raise ValueError("Only a unidirectional, sequence-first LSTM is supported.")
        self.features_extractor = features_extractor
        self.lstm = lstm
        self.mlp_extractor = mlp_extractor
        self.layers = int(lstm.num_layers)
        self.hidden = int(lstm.hidden_size)

    @property
    def memory_size(self) -> int:
        return 2 * self.layers * self.hidden

    def forward(self, obs: Any, memory: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features_extractor(obs)
        mem = torch.transpose(memory, 0, 1)  # [1, batch, memory_size]
        size, n = self.hidden, self.layers
        h = [mem[:, :, i * size : (i + 1) * size] for i in range(n)]
        c = [mem[:, :, (n + i) * size : (n + i + 1) * size] for i in range(n)]
        h0 = h[0] if n == 1 else torch.cat(h, dim=0)
        c0 = c[0] if n == 1 else torch.cat(c, dim=0)
        out, (h1, c1) = self.lstm(features.unsqueeze(0), (h0.contiguous(), c0.contiguous()))
        parts = [h1[i : i + 1] for i in range(n)] + [c1[i : i + 1] for i in range(n)]
        memory_out = torch.transpose(torch.cat(parts, dim=2), 0, 1)
        latent = self.mlp_extractor.forward_actor(out.reshape(-1, self.hidden))
        return latent, memory_out


class SacBody(nn.Module):
    """SAC actor (SB3's or the discrete one): features extractor then ``latent_pi``."""

    def __init__(self, features_extractor: nn.Module, latent_pi: nn.Module) -> None:
        super().__init__()
        self.features_extractor = features_extractor
        self.latent_pi = latent_pi

    def forward(self, obs: Any) -> torch.Tensor:
        return cast(torch.Tensor, self.latent_pi(self.features_extractor(obs)))


class PolicyGraph(nn.Module):
    """``forward(obs_0, ..., [action_masks], [recurrent_in])`` -> ML-Agents' outputs, in order.

    Outputs: version_number, memory_size, then continuous_actions,
    continuous_action_output_shape, deterministic_continuous_actions (continuous actions), or
    discrete_actions, discrete_action_output_shape, deterministic_discrete_actions (discrete),
    then recurrent_out (memory).
    """

    version_number: torch.Tensor
    memory_size_vector: torch.Tensor
    discrete_act_size_vector: torch.Tensor
    continuous_act_size_vector: torch.Tensor

    def __init__(
        self,
        observations: Sequence[ObservationInput],
        keys: Sequence[str] | None,
        body: nn.Module,
        head: ContinuousHead | DiscreteHead,
        memory_size: int,
    ) -> None:
        super().__init__()
        self.observations = nn.ModuleList(observations)
        self.keys = None if keys is None else tuple(keys)
        self.body = body
        self.head = head
        self.memory_size = memory_size
        self.discrete = isinstance(head, DiscreteHead)
        self.register_buffer("version_number", torch.tensor([float(MODEL_EXPORT_VERSION)]))
        self.register_buffer("memory_size_vector", torch.tensor([float(memory_size)]))
        if isinstance(head, DiscreteHead):
            shape = torch.tensor([[float(b) for b in head.branches]])
            self.register_buffer("discrete_act_size_vector", shape)
        else:
            mean_net = head.mean_net
            size = _out_features(mean_net)
            self.register_buffer("continuous_act_size_vector", torch.tensor([float(size)]))

    @property
    def num_observations(self) -> int:
        return len(self.observations)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        n = self.num_observations
        processed = [module(x) for module, x in zip(self.observations, inputs[:n], strict=True)]
        obs: Any = (
            processed[0] if self.keys is None else dict(zip(self.keys, processed, strict=True))
        )
        rest = list(inputs[n:])
        masks = rest.pop(0) if self.discrete else None
        memory_out = None
        if self.memory_size:
            latent, memory_out = self.body(obs, rest.pop(0))
        else:
            latent = self.body(obs)
        outputs: list[torch.Tensor] = [self.version_number, self.memory_size_vector]
        if isinstance(self.head, DiscreteHead):
            assert masks is not None
            sampled, deterministic = self.head(latent, masks)
            outputs += [sampled, self.discrete_act_size_vector, deterministic]
        else:
            sampled, deterministic = self.head(latent)
            outputs += [sampled, self.continuous_act_size_vector, deterministic]
        if memory_out is not None:
            outputs.append(memory_out)
        return tuple(outputs)


def _out_features(module: nn.Module) -> int:
    linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"Cannot tell the action size of {type(module).__name__}.")
    return int(linears[-1].out_features)


# -- building from an SB3 model ---------------------------------------------------------------


def _entries(space: spaces.Space[Any]) -> dict[str | None, spaces.Space[Any]]:
    """A Dict space's entries, or ``{None: space}``."""
    if isinstance(space, spaces.Dict):
        return {key: value for key, value in space.spaces.items()}
    return {None: space}


def _check_spaces(policy: BasePolicy, converter: SpaceConverter) -> None:
    """Raise ValueError unless the policy's spaces are those the adapters give the behavior."""
    obs_space, expected = policy.observation_space, converter.observation_space
    ours, theirs = _entries(expected), _entries(obs_space)
    if set(ours) != set(theirs):
        raise ValueError(
            f"The model's observation space {obs_space} does not match the behavior's {expected}"
            " (Dict keys are the sensor names, see unity_gym.spaces.observation_keys)."
        )
    for key, box in ours.items():
        got = theirs[key]
        if not isinstance(got, spaces.Box) or got.shape != box.shape:
            where = "" if key is None else f" {key!r}"
            raise ValueError(
                f"The model's observation{where} is {got}; the behavior's is {box.shape} floats."
            )
    action_space = policy.action_space
    expected_actions = converter.action_space
    same = type(action_space) is type(expected_actions)
    if isinstance(action_space, spaces.Box) and isinstance(expected_actions, spaces.Box):
        same = bool(
            action_space.shape == expected_actions.shape
            and np.all(action_space.low == -1.0)
            and np.all(action_space.high == 1.0)
        )
    elif isinstance(action_space, spaces.Discrete) and isinstance(
        expected_actions, spaces.Discrete
    ):
        same = int(action_space.n) == int(expected_actions.n) and int(action_space.start) == 0
    elif isinstance(action_space, spaces.MultiDiscrete) and isinstance(
        expected_actions, spaces.MultiDiscrete
    ):
        same = list(action_space.nvec) == list(expected_actions.nvec)
    if not same:
        raise ValueError(
            f"The model's action space {action_space} does not match the behavior's "
            f"{expected_actions} ({converter.behavior_spec.action_spec})."
        )


def _observation_inputs(
    policy: BasePolicy,
    converter: SpaceConverter,
    normalization: Normalization | None,
) -> list[ObservationInput]:
    obs_space = policy.observation_space
    keys = converter.keys
    stats = _normalization_stats(normalization, keys)
    normalize_images = bool(getattr(policy, "normalize_images", True))
    modules = []
    for i, spec in enumerate(converter.behavior_spec.observation_specs):
        box = obs_space
        if isinstance(obs_space, spaces.Dict):
            assert keys is not None
            box = obs_space.spaces[keys[i]]
        assert isinstance(box, spaces.Box)
        env_scale = 255.0 if spec.is_visual and box.dtype == np.uint8 else 1.0
        network_scale = 1.0 / 255.0 if normalize_images and is_image_space(box) else 1.0
        modules.append(ObservationInput(tuple(spec.shape), env_scale, stats[i], network_scale))
    return modules


def _actor_critic_head(policy: Any, branches: Sequence[int]) -> nn.Module:
    dist = policy.action_dist
    categorical = (CategoricalDistribution, MultiCategoricalDistribution, MaskableDistribution)
    if isinstance(dist, categorical):
        return DiscreteHead(policy.action_net, branches)
    if isinstance(dist, DiagGaussianDistribution):
        std = torch.exp(policy.log_std.detach())
        return ContinuousHead(policy.action_net, squash=False, std=std)
    if isinstance(dist, StateDependentNoiseDistribution):
        variance = dist.get_std(policy.log_std.detach()) ** 2
        return ContinuousHead(
            policy.action_net,
            squash=bool(policy.squash_output),
            sde_variance=variance,
            sde_epsilon=float(dist.epsilon),
        )
    raise ValueError(f"Unsupported action distribution {type(dist).__name__}.")


def build_policy_graph(
    model: BaseAlgorithm | BasePolicy,
    behavior_spec: BehaviorSpec,
    normalization: Normalization | None = None,
) -> PolicyGraph:
    """A :class:`PolicyGraph` over a CPU copy of ``model``'s policy (the model is untouched).

    Supports actor-critic policies (PPO, A2C, sb3-contrib MaskablePPO), recurrent ones
    (RecurrentPPO), SAC and :class:`~sb3_ext.algorithms.DiscreteSAC`. Raises ValueError for
    hybrid actions (SB3 has no policy for them) and when the model's spaces differ from the
    behavior's.
    """
    action_spec = behavior_spec.action_spec
    if action_spec.continuous_size and action_spec.discrete_size:
        raise ValueError(
            "Hybrid actions (continuous and discrete) cannot be exported: Stable-Baselines3 has"
            " no policy for Dict action spaces."
        )
    candidate = model.policy if isinstance(model, BaseAlgorithm) else model
    if not isinstance(candidate, BasePolicy):
        raise TypeError(f"Expected an SB3 model or policy, got {type(model).__name__}.")
    policy: Any = candidate

    visual = [s.is_visual for s in behavior_spec.observation_specs]
    obs_space = policy.observation_space
    boxes = list(obs_space.spaces.values()) if isinstance(obs_space, spaces.Dict) else [obs_space]
    uint8 = any(
        isinstance(b, spaces.Box) and b.dtype == np.uint8 and len(b.shape) == 3 for b in boxes
    )
    converter = SpaceConverter.for_behavior(
        behavior_spec, visual_dtype="uint8" if uint8 or not any(visual) else "float32"
    )
    _check_spaces(policy, converter)
    observations = _observation_inputs(policy, converter, normalization)
    branches = action_spec.discrete_branches

    body: nn.Module
    head: nn.Module
    memory_size = 0
    lstm = getattr(policy, "lstm_actor", None)
    actor = getattr(policy, "actor", None)
    actor_critic = isinstance(policy, ActorCriticPolicy) or all(
        hasattr(policy, name) for name in ("pi_features_extractor", "mlp_extractor", "action_net")
    )
    if isinstance(lstm, nn.LSTM) and actor_critic:
        recurrent = RecurrentBody(policy.pi_features_extractor, lstm, policy.mlp_extractor)
        body, memory_size = recurrent, recurrent.memory_size
        head = _actor_critic_head(policy, branches)
    elif actor_critic:
        body = ActorCriticBody(policy.pi_features_extractor, policy.mlp_extractor)
        head = _actor_critic_head(policy, branches)
    elif isinstance(actor, DiscreteActor):
        body = SacBody(actor.features_extractor, actor.latent_pi)
        head = DiscreteHead(actor.action_net, branches)
    elif actor is not None and hasattr(actor, "latent_pi") and hasattr(actor, "mu"):
        body = SacBody(actor.features_extractor, actor.latent_pi)
        if actor.use_sde:
            dist = actor.action_dist
            variance = dist.get_std(actor.log_std.detach()) ** 2
            head = ContinuousHead(
                actor.mu, squash=True, sde_variance=variance, sde_epsilon=float(dist.epsilon)
            )
        else:
            head = ContinuousHead(actor.mu, squash=True, log_std_net=actor.log_std)
    else:
        raise ValueError(
            f"Unsupported policy {type(policy).__name__}: export handles actor-critic "
            "(PPO, A2C, MaskablePPO), recurrent (RecurrentPPO), SAC and DiscreteSAC policies."
        )
    assert isinstance(head, ContinuousHead | DiscreteHead)
    graph = PolicyGraph(observations, converter.keys, body, head, memory_size)
    # A copy, so that moving to the CPU and eval mode leave the model as it was.
    return copy.deepcopy(graph).to("cpu").eval()
