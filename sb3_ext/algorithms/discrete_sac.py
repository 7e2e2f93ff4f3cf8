"""Soft Actor-Critic for discrete and multi-branch discrete actions, as ML-Agents trains it.

SB3's SAC takes ``Box`` actions only. :class:`DiscreteSAC` is an SB3 ``OffPolicyAlgorithm``
(SB3's collection loop, replay buffers, callbacks, logger, save/load) whose update is
ML-Agents release 21's discrete SAC: Q1/Q2 output one value per action of every branch, a
separate V network with a Polyak-averaged target V supplies the backup
``r + gamma (1 - done) V_target(s')``, one entropy coefficient per branch is tuned towards
``0.2 ln(n_i)``, and Unity's action masks are applied when acting and in every loss. The loss
math lives in :mod:`sb3_ext.algorithms.discrete_sac_losses`.

Acting: actions always come from the stochastic policy under the environment's masks, also
before ``learning_starts`` (ML-Agents has no uniform-random warm-up; ``learning_starts`` only
delays updates), so masked actions are never taken. Masks come from the VecEnv's
``env_method("action_masks")`` (sb3-contrib's convention) when it has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import polyak_update
from torch.nn import functional as F

from sb3_ext.algorithms.discrete_sac_losses import (
    entropy_coef_loss,
    policy_loss,
    q_target,
    taken_action_q,
    target_entropies,
    value_target,
)
from sb3_ext.algorithms.discrete_sac_policy import (
    CnnPolicy,
    DiscreteActor,
    DiscreteSACCritic,
    DiscreteSACPolicy,
    MlpPolicy,
    MultiInputPolicy,
    StateNetwork,
)
from sb3_ext.algorithms.masked_replay_buffer import (
    MaskedDictReplayBuffer,
    MaskedDictReplayBufferSamples,
    MaskedReplayBuffer,
    MaskedReplayBufferSamples,
    action_branches,
)

SelfDiscreteSAC = TypeVar("SelfDiscreteSAC", bound="DiscreteSAC")


class DiscreteSAC(OffPolicyAlgorithm):
    """Discrete SAC with SB3's SAC conventions (arguments, ``learn``, ``save``/``load``).

    ``ent_coef``: ``"auto"`` (tuned, starts at 1), ``"auto_<init>"`` (tuned, starts at
    ``init``) or a float (fixed); one coefficient per branch. ``target_entropy``: ``"auto"``
    (``0.2 ln(n_i)`` per branch, ML-Agents' choice), a float for every branch, or one float
    per branch. ``learning_rate`` (a float or a schedule) drives all three Adam optimizers:
    actor, critics (Q1, Q2, V together) and entropy coefficients. ``tau`` updates the target V
    after every gradient step. ``replay_buffer_class`` must keep masks
    (:class:`MaskedReplayBuffer` / :class:`MaskedDictReplayBuffer`, the defaults).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "MlpPolicy": MlpPolicy,
        "CnnPolicy": CnnPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DiscreteSACPolicy
    actor: DiscreteActor
    critic: DiscreteSACCritic
    value_target: StateNetwork

    def __init__(
        self,
        policy: str | type[DiscreteSACPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 100,
        batch_size: int = 256,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
        gradient_steps: int = 1,
        replay_buffer_class: type[ReplayBuffer] | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        optimize_memory_usage: bool = False,
        ent_coef: str | float = "auto",
        target_entropy: str | float | Sequence[float] = "auto",
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size,
            learning_starts,
            batch_size,
            tau,
            gamma,
            train_freq,
            gradient_steps,
            action_noise=None,
            replay_buffer_class=replay_buffer_class,
            replay_buffer_kwargs=replay_buffer_kwargs,
            optimize_memory_usage=optimize_memory_usage,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Discrete, spaces.MultiDiscrete),
            support_multi_env=True,
        )
        self.ent_coef = ent_coef
        self.target_entropy = target_entropy
        self.log_ent_coef: th.Tensor | None = None
        self.ent_coef_tensor: th.Tensor | None = None
        self.ent_coef_optimizer: th.optim.Adam | None = None
        self._masking = False
        self._last_action_masks: np.ndarray | None = None
        if _init_setup_model:
            self._setup_model()

    # -- setup -----------------------------------------------------------------------------

    def _setup_model(self) -> None:
        dict_obs = isinstance(self.observation_space, spaces.Dict)
        expected = MaskedDictReplayBuffer if dict_obs else MaskedReplayBuffer
        if self.replay_buffer_class is None:
            self.replay_buffer_class = expected
        elif not issubclass(self.replay_buffer_class, expected):
            raise ValueError(
                f"replay_buffer_class={self.replay_buffer_class.__name__}: DiscreteSAC needs a "
                f"buffer that stores action masks; pass {expected.__name__} or a subclass of it "
                "(or leave replay_buffer_class unset)."
            )
        super()._setup_model()
        self._create_aliases()
        self.branches = action_branches(self.action_space)
        self.target_entropies = th.as_tensor(
            self._target_entropy_values(), dtype=th.float32, device=self.device
        )
        n_branches = len(self.branches)
        if isinstance(self.ent_coef, str):
            init = self._auto_ent_coef_init(self.ent_coef)
            start = th.full((n_branches,), init, device=self.device)
            self.log_ent_coef = th.log(start).requires_grad_(True)
            self.ent_coef_optimizer = th.optim.Adam([self.log_ent_coef], lr=self.lr_schedule(1))
        else:
            value = float(self.ent_coef)
            if value <= 0.0:
                raise ValueError(f"ent_coef={self.ent_coef} must be positive (or 'auto').")
            self.ent_coef_tensor = th.full((n_branches,), value, device=self.device)

    @staticmethod
    def _auto_ent_coef_init(setting: str) -> float:
        init = 1.0
        if setting != "auto":
            prefix, _, number = setting.partition("_")
            try:
                init = float(number) if prefix == "auto" else -1.0
            except ValueError:
                init = -1.0
        if init <= 0.0:
            raise ValueError(
                f"ent_coef={setting!r}: use 'auto', 'auto_<initial value>' with a positive value "
                "(e.g. 'auto_0.5'), or a positive float for a fixed coefficient."
            )
        return init

    def _target_entropy_values(self) -> list[float]:
        setting = self.target_entropy
        if setting == "auto":
            return target_entropies(self.branches)
        if isinstance(setting, int | float):
            return [float(setting)] * len(self.branches)
        if isinstance(setting, str) or len(setting) != len(self.branches):
            raise ValueError(
                f"target_entropy={setting!r}: use 'auto' (0.2 ln(n) per branch), one float, or "
                f"one float per branch ({len(self.branches)} branches {list(self.branches)})."
            )
        return [float(v) for v in setting]

    def _create_aliases(self) -> None:
        self.actor = self.policy.actor
        self.critic = self.policy.critic
        self.value_target = self.policy.value_target

    @property
    def entropy_coefficients(self) -> th.Tensor:
        """The current per-branch entropy coefficients (no gradient)."""
        if self.log_ent_coef is not None:
            return self.log_ent_coef.detach().exp()
        assert self.ent_coef_tensor is not None
        return self.ent_coef_tensor

    # -- acting ----------------------------------------------------------------------------

    def _setup_learn(
        self,
        total_timesteps: int,
        callback: MaybeCallback = None,
        reset_num_timesteps: bool = True,
        tb_log_name: str = "run",
        progress_bar: bool = False,
    ) -> tuple[int, BaseCallback]:
        result = super()._setup_learn(
            total_timesteps, callback, reset_num_timesteps, tb_log_name, progress_bar
        )
        self._masking = self.env is not None and is_masking_supported(self.env)
        return result

    def _sample_action(
        self,
        learning_starts: int,
        action_noise: ActionNoise | None = None,
        n_envs: int = 1,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stochastic policy's actions under the current masks, from the first step."""
        assert self._last_obs is not None and self.env is not None
        masks = get_action_masks(self.env) if self._masking else None
        self._last_action_masks = masks
        actions, _ = self.predict(self._last_obs, deterministic=False, action_masks=masks)
        return actions, actions

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        assert isinstance(replay_buffer, MaskedReplayBuffer | MaskedDictReplayBuffer)
        replay_buffer.set_next_action_masks(self._last_action_masks)
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)

    def predict(
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """Actions for ``observation``; ``action_masks`` (True = allowed, flat over branches)
        keeps masked actions from being chosen."""
        return self.policy.predict(observation, state, episode_start, deterministic, action_masks)

    # -- training --------------------------------------------------------------------------

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` updates, each as ML-Agents' ``TorchSACOptimizer.update``: one
        minibatch, all losses from one forward pass, then Adam steps on the actor, the critics
        and the entropy coefficients, then the target V's Polyak update."""
        self.policy.set_training_mode(True)
        optimizers: list[th.optim.Optimizer] = [self.actor.optimizer, self.critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers.append(self.ent_coef_optimizer)
        self._update_learning_rate(optimizers)
        assert self.replay_buffer is not None
        stats: dict[str, list[float]] = {
            key: [] for key in ("actor", "value", "q1", "q2", "ent_coef", "entropy", "alpha")
        }
        for _ in range(gradient_steps):
            data = self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)
            assert isinstance(data, MaskedReplayBufferSamples | MaskedDictReplayBufferSamples)
            losses = self._losses(data)
            for key, value in losses.items():
                if key in stats:
                    stats[key].append(float(value.item()))
            if not th.isfinite(losses["value"]):
                raise RuntimeError(
                    "DiscreteSAC: the value loss is not finite (Inf or NaN); lower the learning "
                    "rate or the reward scale."
                )
            self.actor.optimizer.zero_grad()
            losses["actor"].backward()
            self.actor.optimizer.step()
            self.critic.optimizer.zero_grad()
            (losses["q1"] + losses["q2"] + losses["value"]).backward()
            self.critic.optimizer.step()
            if self.ent_coef_optimizer is not None:
                self.ent_coef_optimizer.zero_grad()
                losses["ent_coef"].backward()
                self.ent_coef_optimizer.step()
            polyak_update(self.critic.value.parameters(), self.value_target.parameters(), self.tau)
        self._n_updates += gradient_steps
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if gradient_steps <= 0:
            return
        self.logger.record("train/actor_loss", np.mean(stats["actor"]))
        self.logger.record("train/critic_loss", np.mean(stats["value"]))
        self.logger.record("train/q1_loss", np.mean(stats["q1"]))
        self.logger.record("train/q2_loss", np.mean(stats["q2"]))
        self.logger.record("train/ent_coef", np.mean(stats["alpha"]))
        self.logger.record("train/entropy_loss", -np.mean(stats["entropy"]))
        if self.ent_coef_optimizer is not None:
            self.logger.record("train/ent_coef_loss", np.mean(stats["ent_coef"]))

    def _losses(
        self, data: MaskedReplayBufferSamples | MaskedDictReplayBufferSamples
    ) -> dict[str, th.Tensor]:
        """Every loss of one update (and the logged entropy and mean coefficient)."""
        policy = self.actor.branch_policy(data.observations, data.action_masks)
        fixed = policy.detach()
        alphas = self.entropy_coefficients
        q1, q2 = self.critic.q_values(data.observations)
        values = self.critic.value(data.observations).flatten()
        with th.no_grad():
            next_values = self.value_target(data.next_observations).flatten()
            backup = q_target(data.rewards.flatten(), data.dones.flatten(), next_values, self.gamma)
            v_backup = value_target(q1, q2, fixed, alphas)
        actions = data.actions.long().reshape(len(values), -1)
        log_alphas = self.log_ent_coef if self.log_ent_coef is not None else alphas.log()
        return {
            "actor": policy_loss(q1.detach(), policy, alphas),
            "q1": 0.5 * F.mse_loss(taken_action_q(q1, actions, self.branches), backup),
            "q2": 0.5 * F.mse_loss(taken_action_q(q2, actions, self.branches), backup),
            "value": 0.5 * F.mse_loss(values, v_backup),
            "ent_coef": entropy_coef_loss(log_alphas, fixed, self.target_entropies),
            "entropy": fixed.entropies().sum(dim=1).mean(),
            "alpha": alphas.mean(),
        }

    # -- learn, save, load -----------------------------------------------------------------

    def learn(
        self: SelfDiscreteSAC,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DiscreteSAC",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDiscreteSAC:
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )

    def _excluded_save_params(self) -> list[str]:
        transient = ["actor", "critic", "value_target", "_last_action_masks"]
        return [*super()._excluded_save_params(), *transient]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        state_dicts = ["policy", "actor.optimizer", "critic.optimizer"]
        if self.ent_coef_optimizer is not None:
            state_dicts.append("ent_coef_optimizer")
            return state_dicts, ["log_ent_coef"]
        return state_dicts, ["ent_coef_tensor"]
