"""Behavioral cloning of an SB3 policy from expert transitions, as ML-Agents' BC module runs it.

:class:`BehavioralCloning` holds its own Adam over the policy's actor (never the value
function), at ``learning_rate * strength``, decaying linearly to 1e-10 over ``steps`` agent
steps when ``steps > 0`` (then switched off); each :meth:`~BehavioralCloning.update` is
``num_epoch`` passes over the shuffled demonstrations in minibatches of ``batch_size``
(``samples_per_update`` caps the minibatches per pass). Loss: the mean squared error between
a reparameterised sample of the policy (so it also shrinks the spread) and the expert's
continuous action; the cross-entropy of each discrete branch, averaged over branches, with
the demonstration's action masks applied where the policy takes masks. Stat:
``Losses/Pretraining Loss``.

:class:`BehavioralCloningCallback` runs it where ML-Agents does: after every PPO update (all
epochs) for the PPO family, after every gradient step for SAC and DiscreteSAC.
:func:`pretrain` runs it alone, before ``learn``.

Policies: SB3's ``ActorCriticPolicy`` family (PPO, MaskablePPO, RecurrentPPO, whose LSTM
starts each sample from zeros, as ML-Agents' memories do), SAC's policy and DiscreteSAC's.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    Distribution,
    MultiCategoricalDistribution,
)
from stable_baselines3.common.policies import BasePolicy
from torch import nn
from torch.nn import functional as F

from sb3_ext.imitation.demonstrations import (
    ExpertTransitions,
    ObservationTransform,
    load_expert_transitions,
)
from sb3_ext.reward_signals.actions import ActionLayout
from sb3_ext.reward_signals.base import ObsTensor, obs_batch_size, obs_from_numpy
from sb3_ext.reward_signals.stats import StatsSink

PRETRAINING_LOSS_STAT = "Losses/Pretraining Loss"
MIN_LEARNING_RATE = 1e-10  # ML-Agents' floor: reached, cloning stops
DEFAULT_NUM_EPOCH = 3  # ML-Agents' BC default (not the trainer's num_epoch)


def actor_parameters(policy: BasePolicy) -> list[nn.Parameter]:
    """The parameters that choose actions: SAC's ``actor``, or an actor-critic policy minus
    its value function (``value_net``, the critic's MLP, features and LSTM)."""
    actor = getattr(policy, "actor", None)
    if isinstance(actor, nn.Module):
        return list(actor.parameters())
    critic = (
        "value_net.",
        "mlp_extractor.value_net.",
        "vf_features_extractor.",
        "lstm_critic.",
        "critic.",
    )
    return [p for name, p in policy.named_parameters() if not name.startswith(critic)]


class BehavioralCloning:
    """ML-Agents' BC module for an SB3 policy.

    :param policy: the model's policy (``model.policy``).
    :param expert: the demonstrations in the model's spaces.
    :param learning_rate: the trainer's (initial) learning rate; BC uses ``learning_rate *
        strength``.
    :param strength: multiplies the learning rate (not the loss), as in ML-Agents.
    :param steps: agent steps over which the rate decays to 1e-10; 0 keeps it constant.
    :param batch_size: demonstrations per minibatch.
    :param num_epoch: passes over the demonstrations per update (ML-Agents' default 3).
    :param samples_per_update: at most this many demonstrations per pass; 0 = all.
    :param normalize_expert: maps expert observations as the policy sees them.
    """

    def __init__(
        self,
        policy: BasePolicy,
        expert: ExpertTransitions,
        learning_rate: float,
        strength: float = 1.0,
        steps: int = 0,
        batch_size: int = 64,
        num_epoch: int = DEFAULT_NUM_EPOCH,
        samples_per_update: int = 0,
        normalize_expert: ObservationTransform | None = None,
    ) -> None:
        if learning_rate <= 0 or strength < 0 or steps < 0 or batch_size < 1 or num_epoch < 1:
            raise ValueError(
                f"Behavioral cloning needs learning_rate > 0, strength >= 0, steps >= 0, "
                f"batch_size >= 1 and num_epoch >= 1; got learning_rate={learning_rate}, "
                f"strength={strength}, steps={steps}, batch_size={batch_size}, "
                f"num_epoch={num_epoch}."
            )
        self.policy = policy
        self.expert = expert
        self.initial_learning_rate = float(learning_rate) * float(strength)
        self.current_learning_rate = self.initial_learning_rate
        self.steps = int(steps)
        self.batch_size = int(batch_size)
        self.num_epoch = int(num_epoch)
        self.samples_per_update = int(samples_per_update)
        self.normalize_expert = normalize_expert
        self.layout = ActionLayout.from_space(policy.action_space)
        self.optimizer = th.optim.Adam(
            actor_parameters(policy), lr=max(self.initial_learning_rate, MIN_LEARNING_RATE)
        )
        self.n_updates = 0

    def learning_rate_at(self, step: int) -> float:
        """ML-Agents' ``DecayedValue``: linear from the initial rate to 1e-10 over ``steps``."""
        if self.steps <= 0:
            return self.initial_learning_rate
        fraction = 1.0 - min(step, self.steps) / self.steps
        return (self.initial_learning_rate - MIN_LEARNING_RATE) * fraction + MIN_LEARNING_RATE

    def resume_at(self, step: int) -> None:
        """Set the rate for agent step ``step`` (a resumed run past ``steps`` stays off; ML-Agents
        would run one more update at the initial rate)."""
        self.current_learning_rate = self.learning_rate_at(step)
        for group in self.optimizer.param_groups:
            group["lr"] = max(self.current_learning_rate, MIN_LEARNING_RATE)

    @property
    def active(self) -> bool:
        """False once the learning rate has decayed to its floor (updates are skipped)."""
        return self.current_learning_rate > MIN_LEARNING_RATE

    def _minibatches(self) -> Iterator[np.ndarray]:
        n = len(self.expert)
        size = max(min(self.batch_size, n), 1)
        batches = n // size
        if self.samples_per_update > 0:
            batches = min(batches, self.samples_per_update // size)
        order = np.random.permutation(n)
        for i in range(batches):
            yield order[i * size : (i + 1) * size]

    def update(self, step: int) -> dict[str, float]:
        """One BC update at agent step ``step``: ``num_epoch`` passes (nothing once the rate
        has decayed away), then the rate for ``step``."""
        next_rate = self.learning_rate_at(step)
        if not self.active:
            return {PRETRAINING_LOSS_STAT: 0.0}
        losses = []
        self.policy.set_training_mode(True)
        for _ in range(self.num_epoch):
            for index in self._minibatches():
                losses.append(self.train_batch(index))
        for group in self.optimizer.param_groups:
            group["lr"] = next_rate
        self.current_learning_rate = next_rate
        self.n_updates += 1
        return {PRETRAINING_LOSS_STAT: float(np.mean(losses)) if losses else 0.0}

    def train_batch(self, index: np.ndarray) -> float:
        """One Adam step on the demonstrations ``index``; the loss."""
        obs, actions, _ = self.expert.rows(index)
        if self.normalize_expert is not None:
            obs = self.normalize_expert(obs)
        masks = None
        if self.expert.action_masks is not None:
            masks = th.as_tensor(self.expert.action_masks[index], device=self.policy.device)
        loss = self.loss(
            obs_from_numpy(obs, self.policy.device),
            th.as_tensor(actions, device=self.policy.device),
            masks,
        )
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        return float(loss.item())

    def loss(
        self, observations: ObsTensor, actions: th.Tensor, masks: th.Tensor | None
    ) -> th.Tensor:
        """ML-Agents' BC loss of the policy on expert ``actions`` (``masks``: 1 = allowed)."""
        continuous, discrete = self.layout.split(actions)
        policy = self.policy
        if hasattr(policy, "branch_policy"):  # DiscreteSAC's actor
            return self._branch_loss(policy, observations, discrete, masks)
        actor = getattr(policy, "actor", None)
        if actor is not None and hasattr(actor, "branch_policy"):
            return self._branch_loss(actor, observations, discrete, masks)
        if actor is not None:  # SAC: the tanh-squashed reparameterised sample
            sampled, _ = actor.action_log_prob(observations)
            assert continuous is not None
            return F.mse_loss(sampled, continuous)
        distribution = self._distribution(observations, masks)
        if continuous is not None:
            return F.mse_loss(distribution.sample(), continuous)
        assert discrete is not None
        return _cross_entropy(distribution, discrete)

    def _distribution(self, observations: ObsTensor, masks: th.Tensor | None) -> Distribution:
        policy = self.policy
        # SB3's and sb3-contrib's actor-critic policies (their signatures differ).
        get_distribution: Callable[..., Any] | None = getattr(policy, "get_distribution", None)
        if get_distribution is None:
            raise TypeError(
                f"Behavioral cloning takes SB3's actor-critic, SAC or DiscreteSAC policies, not "
                f"{type(policy).__name__}."
            )
        lstm = getattr(policy, "lstm_actor", None)
        if isinstance(lstm, nn.LSTM):  # RecurrentPPO: every sample starts from zeros
            batch = obs_batch_size(observations)
            zeros = th.zeros(lstm.num_layers, batch, lstm.hidden_size, device=policy.device)
            starts = th.ones(batch, device=policy.device)
            distribution, _ = get_distribution(observations, (zeros, zeros), starts)
            return cast(Distribution, distribution)
        if masks is not None and "action_masks" in inspect.signature(get_distribution).parameters:
            return cast(Distribution, get_distribution(observations, action_masks=masks))
        return cast(Distribution, get_distribution(observations))

    @staticmethod
    def _branch_loss(
        actor: Any, observations: ObsTensor, discrete: th.Tensor | None, masks: th.Tensor | None
    ) -> th.Tensor:
        assert discrete is not None
        branch_policy = actor.branch_policy(observations, masks)
        parts = th.split(branch_policy.log_probs, list(branch_policy.branches), dim=1)
        losses = [
            -part.gather(1, discrete[:, i : i + 1]).squeeze(1) for i, part in enumerate(parts)
        ]
        return th.stack(losses).mean()


def _cross_entropy(distribution: Distribution, discrete: th.Tensor) -> th.Tensor:
    """Mean over branches and batch of ``-log p(expert action)``."""
    if isinstance(distribution, CategoricalDistribution):
        categoricals: Sequence[th.distributions.Categorical] = [distribution.distribution]
    elif isinstance(distribution, MultiCategoricalDistribution):
        categoricals = distribution.distribution
    else:
        inner = getattr(distribution, "distributions", None) or getattr(
            distribution, "distribution", None
        )
        categoricals = inner if isinstance(inner, list) else [inner]  # type: ignore[list-item]
    losses = [-c.log_prob(discrete[:, i]) for i, c in enumerate(categoricals)]
    return th.stack(losses).mean()


class BehavioralCloningCallback(BaseCallback):
    """Runs :class:`BehavioralCloning` during ``learn``: after each PPO update (PPO family) or
    after each gradient step (SAC, DiscreteSAC), as ML-Agents does.

    :param cloning: the BC module (built for ``model.policy``).
    :param stats: where ``Losses/Pretraining Loss`` goes; default SB3's logger.
    """

    def __init__(
        self, cloning: BehavioralCloning, stats: StatsSink | None = None, verbose: int = 0
    ) -> None:
        super().__init__(verbose)
        self.cloning = cloning
        self._stats = stats
        self._seen_updates = 0
        self._on_policy = True

    def _init_callback(self) -> None:
        from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm

        if self.cloning.policy is not self.model.policy:
            raise ValueError(
                "BehavioralCloningCallback: the BehavioralCloning module was built for another "
                "policy; build it with model.policy."
            )
        self._on_policy = isinstance(self.model, OnPolicyAlgorithm)
        self._seen_updates = self._updates()
        self.cloning.resume_at(self.model.num_timesteps)

    def _updates(self) -> int:
        """PPO updates (``_n_updates`` counts epochs there) or gradient steps so far."""
        n = int(getattr(self.model, "_n_updates", 0))
        if self._on_policy:
            return n // max(1, int(getattr(self.model, "n_epochs", 1)))
        return n

    def _record(self, stats: dict[str, float]) -> None:
        for key, value in stats.items():
            if self._stats is not None:
                self._stats(key, value)
            else:
                self.logger.record_mean(key, value)

    def _catch_up(self) -> None:
        new = self._updates() - self._seen_updates
        self._seen_updates += max(new, 0)
        for _ in range(max(new, 0)):
            self._record(self.cloning.update(self.model.num_timesteps))
        if new > 0:
            self.model.policy.set_training_mode(False)

    def _on_rollout_start(self) -> None:
        self._catch_up()

    def _on_step(self) -> bool:
        return True

    def _on_training_end(self) -> None:
        self._catch_up()


def pretrain(
    model: BaseAlgorithm,
    expert: ExpertTransitions | str | os.PathLike[str],
    updates: int = 1,
    learning_rate: float | None = None,
    batch_size: int = 64,
    num_epoch: int = DEFAULT_NUM_EPOCH,
    normalize_expert: ObservationTransform | None = None,
) -> list[float]:
    """Behavioral cloning before (or between) ``learn`` calls: ``updates`` BC updates of
    ``num_epoch`` passes each, at a constant rate (default: the model's initial learning
    rate). ``expert``: transitions, or a ``.demo`` file or folder read for the model's spaces.
    Returns each update's mean loss."""
    if not isinstance(expert, ExpertTransitions):
        expert = load_expert_transitions(expert, model.observation_space, model.action_space)
    rate = learning_rate if learning_rate is not None else float(model.lr_schedule(1.0))
    cloning = BehavioralCloning(
        model.policy,
        expert,
        rate,
        batch_size=batch_size,
        num_epoch=num_epoch,
        normalize_expert=normalize_expert,
    )
    losses = [cloning.update(model.num_timesteps)[PRETRAINING_LOSS_STAT] for _ in range(updates)]
    model.policy.set_training_mode(False)
    return losses


@dataclass
class BehavioralCloningSettings:
    """ML-Agents' ``behavioral_cloning`` section, and how to build the module for a model.

    ``batch_size`` None: the trainer's ``batch_size``; ``num_epoch`` None: 3 (ML-Agents'
    default, not the trainer's ``num_epoch``).
    """

    demo_path: str
    strength: float = 1.0
    steps: int = 0
    batch_size: int | None = None
    num_epoch: int | None = None
    samples_per_update: int = 0

    def build(
        self,
        model: BaseAlgorithm,
        learning_rate: float,
        default_batch_size: int,
        normalize_expert: ObservationTransform | None = None,
    ) -> BehavioralCloning:
        """The module for ``model.policy``, its demonstrations read for the model's spaces."""
        expert = load_expert_transitions(
            self.demo_path, model.observation_space, model.action_space
        )
        return BehavioralCloning(
            model.policy,
            expert,
            learning_rate,
            strength=self.strength,
            steps=self.steps,
            batch_size=self.batch_size or default_batch_size,
            num_epoch=self.num_epoch or DEFAULT_NUM_EPOCH,
            samples_per_update=self.samples_per_update,
            normalize_expert=normalize_expert,
        )
