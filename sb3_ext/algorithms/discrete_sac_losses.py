"""The loss math of ML-Agents' discrete SAC, as plain functions of tensors.

Shapes: ``B`` rows, ``nb`` branches of sizes ``n_i``, ``D = sum(n_i)`` columns. Q outputs are
``[B, D]`` (one value per action of every branch), V outputs ``[B]``. The formulas are those of
ML-Agents release 21's ``sac/optimizer_torch.py`` (see ``docs/config-mapping.md``); keeping
them free of networks lets tests check them against hand-computed values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch as th

# Masked logits become ``logit * 0 - 1e8``, as ML-Agents' action model does.
MASK_PENALTY = 1e8
# ML-Agents takes ``log(p + 1e-7)``; its expectations use ``exp`` of that, i.e. ``p + 1e-7``.
LOG_EPSILON = 1e-7
# ML-Agents' discrete target entropy is this fraction of each branch's maximum, ln(n_i).
TARGET_ENTROPY_SCALE = 0.2


@dataclass(frozen=True)
class BranchPolicy:
    """The masked categorical policy of every branch, flat over branches (``[B, D]``).

    ``probs`` is the softmax of the masked logits (a masked action gets 0); ``log_probs`` is
    ``log(probs + 1e-7)`` and ``weights = exp(log_probs)`` are the probabilities ML-Agents' SAC
    losses weight actions with.
    """

    probs: th.Tensor
    log_probs: th.Tensor
    branches: tuple[int, ...]

    @property
    def weights(self) -> th.Tensor:
        return self.log_probs.exp()

    def detach(self) -> BranchPolicy:
        return BranchPolicy(self.probs.detach(), self.log_probs.detach(), self.branches)

    def entropies(self) -> th.Tensor:
        """``[B, nb]``: each branch's entropy, ``-sum_a p log p`` with ML-Agents' ``p``."""
        terms = self.weights * self.log_probs
        return -th.stack([part.sum(dim=1) for part in split_branches(terms, self.branches)], 1)


def split_branches(values: th.Tensor, branches: Sequence[int]) -> list[th.Tensor]:
    """``[B, D]`` -> one ``[B, n_i]`` slice per branch."""
    return list(th.split(values, list(branches), dim=1))


def target_entropies(branches: Sequence[int]) -> list[float]:
    """ML-Agents' per-branch target entropy, ``0.2 * ln(n_i)``."""
    return [TARGET_ENTROPY_SCALE * math.log(n) for n in branches]


def masked_branch_policy(
    logits: th.Tensor, masks: th.Tensor | None, branches: Sequence[int]
) -> BranchPolicy:
    """Per-branch softmax of ``logits * m - 1e8 * (1 - m)`` (``m``: 1 allowed, 0 masked)."""
    if masks is not None:
        allowed = masks.to(logits.dtype)
        logits = logits * allowed - MASK_PENALTY * (1.0 - allowed)
    probs = th.cat([th.softmax(part, dim=1) for part in split_branches(logits, branches)], 1)
    return BranchPolicy(probs, th.log(probs + LOG_EPSILON), tuple(branches))


def sample_actions(policy: BranchPolicy, deterministic: bool) -> th.Tensor:
    """``[B, nb]`` int64 actions: one draw (or the most likely action) per branch."""
    parts = split_branches(policy.probs, policy.branches)
    if deterministic:
        return th.stack([part.argmax(dim=1) for part in parts], dim=1)
    return th.cat([th.multinomial(part, 1) for part in parts], dim=1)


def taken_action_q(q_values: th.Tensor, actions: th.Tensor, branches: Sequence[int]) -> th.Tensor:
    """``[B]``: the taken action's Q column of each branch, averaged over branches."""
    columns = [
        part.gather(1, actions[:, i : i + 1].long()).squeeze(1)
        for i, part in enumerate(split_branches(q_values, branches))
    ]
    return th.stack(columns, dim=1).mean(dim=1)


def q_target(
    rewards: th.Tensor, dones: th.Tensor, next_values: th.Tensor, gamma: float
) -> th.Tensor:
    """``[B]``: ``r + gamma * (1 - done) * V_target(s')``."""
    return rewards + gamma * (1.0 - dones) * next_values


def _expected_q(q_values: th.Tensor, policy: BranchPolicy) -> th.Tensor:
    """``[B, nb]``: ``sum_a p_i(a) Q_i(s, a)`` per branch."""
    weighted = q_values * policy.weights
    return th.stack([part.sum(dim=1) for part in split_branches(weighted, policy.branches)], 1)


def value_target(
    q1: th.Tensor, q2: th.Tensor, policy: BranchPolicy, alphas: th.Tensor
) -> th.Tensor:
    """``[B]``: ``min_k(mean_i sum_a p_i Qk_i) + mean_i alpha_i H_i``.

    The expectation is taken per branch and averaged over branches before the minimum over
    the two critics, as ML-Agents does.
    """
    expected = th.minimum(_expected_q(q1, policy).mean(dim=1), _expected_q(q2, policy).mean(dim=1))
    return expected + (alphas * policy.entropies()).mean(dim=1)


def policy_loss(q1: th.Tensor, policy: BranchPolicy, alphas: th.Tensor) -> th.Tensor:
    """Scalar: ``mean_B sum_i sum_a p_i(a) (alpha_i log p_i(a) - Q1_i(s, a))``.

    Q1 only, summed (not averaged) over branches, as ML-Agents does.
    """
    terms = policy.weights * policy.log_probs
    parts = split_branches(terms, policy.branches)
    per_branch = th.stack([part.sum(dim=1) for part in parts], dim=1) * alphas
    return (per_branch - _expected_q(q1, policy)).sum(dim=1).mean()


def entropy_coef_loss(log_alphas: th.Tensor, policy: BranchPolicy, targets: th.Tensor) -> th.Tensor:
    """Scalar: ``mean_B mean_i log(alpha_i) (H_i - target_i)``; lowers alpha_i while branch
    i's entropy is above its target."""
    gap = (policy.entropies() - targets).detach()
    return (log_alphas * gap).mean(dim=1).mean()
