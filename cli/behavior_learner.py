"""One behavior's SB3 model, trained in its own thread on players shared with other behaviors.

The learner builds the VecEnv stack (``UnityVecEnv`` over the behavior's agents -> ``VecMonitor``
for raw episode returns -> reward strength -> ``VecNormalize`` when ``normalize``), the model
(new, resumed from this run's latest checkpoint, or initialised from other weights: the
behavior's ``init_path`` or ``--initialize-from``'s run, see :func:`resolve_init_path`), and
runs ``learn`` with a callback that writes summaries and checkpoints and stops when asked.
When it ends, for any reason, it saves a final checkpoint and keeps acting for its behavior
with the trained policy so that other behaviors can go on training.

Curiosity and RND (``reward_signals``) are :mod:`sb3_ext.reward_signals` signals, attached
through :class:`RewardSignalsCallback` (PPO family) or a reward-signal replay buffer and
:class:`OffPolicyRewardSignalsCallback` (SAC family); their stats go to the behavior's summaries.

Checkpoints: ``<Behavior>-<step>.zip`` (SB3's format: weights, optimizer, step count), beside
it ``.normalizer.npz`` (VecNormalize statistics, no pickle), ``.replay.pkl`` (SAC and
DiscreteSAC with ``save_replay_buffer``), ``.reward_signals.pt`` (reward models and their
optimizers, tensors only), ``.self_play.pt`` (the self-play league: snapshots, ratings,
counters, learning team; the ELO also goes to ``training_status.json``) and ``.onnx`` (the
policy alone); then ``checkpoint.json`` is replaced to point at the complete set.
``--resume`` follows that pointer, so a run killed at any moment resumes from its last
complete checkpoint.
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from io import BufferedIOBase
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch as th
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.running_mean_std import RunningMeanStd
from stable_baselines3.common.vec_env import VecEnv, VecMonitor, VecNormalize

from cli.config_errors import ConfigError
from cli.run_artifacts import (
    CheckpointRecord,
    RunDirectory,
    atomic_writer,
    behavior_spec_to_dict,
    write_json,
)
from cli.run_timers import RunTimers
from cli.sb3_translation import NORMALIZED_OBSERVATION_CLIP, Sb3Plan
from cli.training_stats import CUMULATIVE_REWARD, EPISODE_LENGTH, BehaviorStats, SB3StatsBridge
from sb3_ext.imitation import BehavioralCloning, BehavioralCloningCallback
from sb3_ext.reward_scale import VecRewardScale
from sb3_ext.reward_signals import (
    GAILSettings,
    OffPolicyRewardSignalsCallback,
    RewardSignal,
    RewardSignalReplayMixin,
    RewardSignalsCallback,
    SignalValueHeads,
)
from sb3_ext.schedules import EntropyCoefficientSchedule
from sb3_ext.self_play import (
    LATEST,
    LockstepTeams,
    SelfPlayCallback,
    SelfPlayController,
    TeamVecEnv,
)
from unity_gym.agent_slots import SlotStep
from unity_gym.base_env import ActionTuple, BehaviorSpec
from unity_gym.exception import UnityDemoException
from unity_gym.lockstep_behaviors import LockstepBehaviors, SharedBehavior
from unity_gym.sb3_vec_env import UnityVecEnv

logger = logging.getLogger("unity_sb3")

Mode = Literal["train", "resume", "inference"]
POINTER = "checkpoint.json"
REWARD_SIGNALS_SUFFIX = ".reward_signals.pt"
SELF_PLAY_SUFFIX = ".self_play.pt"
# Key of the PPO family's signal value heads in a .reward_signals.pt (no signal has this name).
VALUE_HEADS_KEY = "value_heads"
# Algorithms whose predict takes Unity's action masks.
MASKED_ALGORITHMS = ("MaskablePPO", "DiscreteSAC")


@dataclass
class LearnerSetup:
    """Everything one learner needs besides its players."""

    name: str  # artifact name: the behavior without its team
    behaviors: list[str]  # full behavior names in the scene: the teams this model plays
    spec: BehaviorSpec
    plan: Sb3Plan
    run: RunDirectory
    stats: BehaviorStats
    timers: RunTimers
    stop: threading.Event
    mode: Mode
    summary_freq: int
    checkpoint_interval: int
    keep_checkpoints: int
    seed: int | None
    device: str
    initialize_from: RunDirectory | None = None
    progress_position: int | None = None
    save_replay_buffer: bool = False
    # The behavior's init_path as configured, and the dotted key it is written under.
    init_path: str | None = None
    init_path_key: str = "init_path"
    # Called with the raw environment return of every finished episode (the curriculum).
    on_episode: Callable[[float], None] | None = None


@dataclass(frozen=True)
class InitialWeights:
    """What a new model starts from: an SB3 checkpoint and, beside it, normaliser statistics."""

    model: Path
    normalizer: Path | None
    origin: str  # the setting that chose it, for messages
    reward_signals: Path | None = None  # reward models saved beside the weights


def read_pointer(run: RunDirectory, name: str) -> dict[str, Any] | None:
    """The latest complete checkpoint of ``name`` in ``run`` (None when there is none)."""
    return _read_pointer_file(run.behavior_dir(name) / POINTER)


def _read_pointer_file(pointer: Path) -> dict[str, Any] | None:
    if not pointer.exists():
        return None
    data: dict[str, Any] = json.loads(pointer.read_text())
    return data


def resolve_init_path(
    init_path: str, key: str, name: str, initialize_from: RunDirectory | None = None
) -> InitialWeights:
    """The weights behavior ``name``'s ``init_path`` (written under ``key``) points at.

    As in mlagents-learn, a path is taken from the current directory, except that a bare file
    name is looked up in ``--initialize-from``'s run (``results/<run-id>/<name>/<file>``) when
    that is given. It may be a behavior folder of a unity-sb3 run (its latest complete
    checkpoint, as ``--initialize-from`` takes) or one of its checkpoints
    (``<Behavior>-<step>.zip``, with the ``.normalizer.npz`` beside it when there is one).
    Anything else is a :class:`ConfigError` naming the behavior, the key and the path.
    """
    path = Path(init_path)
    if initialize_from is not None and path.parent == Path("."):
        path = initialize_from.behavior_dir(name) / path
    what = f"{key} of behavior {name} is {init_path!r}"
    accepted = (
        "Give a behavior folder of a unity-sb3 run (results/<run-id>/<Behavior>) or one of "
        "its checkpoints (results/<run-id>/<Behavior>/<Behavior>-<step>.zip)"
    )
    origin = f"{key} {init_path!r}"
    if path.is_dir():
        try:
            pointer = _read_pointer_file(path / POINTER)
        except (OSError, ValueError) as err:
            raise ConfigError(
                f"{what}, but its {POINTER} cannot be read ({err}). {accepted}."
            ) from None
        if pointer is None:
            hint = f" ({path / name} has one)" if (path / name / POINTER).is_file() else ""
            raise ConfigError(
                f"{what}, a folder without a unity-sb3 checkpoint (no {path / POINTER}){hint}. "
                f"{accepted}."
            )
        return _weights_from_pointer(path, pointer, origin)
    if path.is_file():
        if path.suffix != ".zip":
            raise ConfigError(
                f"{what}, which is not a unity-sb3 checkpoint (.zip); ML-Agents' own "
                f"checkpoints (.pt) and exported models (.onnx) cannot initialize an SB3 "
                f"model. {accepted}."
            )
        normalizer_file = path.with_name(f"{path.stem}.normalizer.npz")
        signals_file = path.with_name(f"{path.stem}{REWARD_SIGNALS_SUFFIX}")
        return InitialWeights(
            path,
            normalizer_file if normalizer_file.is_file() else None,
            origin,
            signals_file if signals_file.is_file() else None,
        )
    raise ConfigError(
        f"{what}, which does not exist (looked for {path.absolute()}). {accepted}; a relative "
        "path is taken from the current directory."
    )


def _weights_from_pointer(folder: Path, pointer: dict[str, Any], origin: str) -> InitialWeights:
    normalizer = pointer.get("normalizer")
    signals = pointer.get("reward_signals")
    return InitialWeights(
        folder / pointer["model"],
        folder / normalizer if normalizer else None,
        origin,
        folder / signals if signals else None,
    )


class BehaviorLearner:
    """Trains (or runs) one behavior; :meth:`run` is the thread body."""

    def __init__(
        self,
        setup: LearnerSetup,
        lockstep: LockstepBehaviors,
        controller: SelfPlayController | None = None,
    ) -> None:
        self.setup = setup
        self.lockstep = lockstep
        # Conversions of the first team (every team of one model has the same spec).
        self.shared: SharedBehavior = lockstep.behavior(setup.behaviors[0])
        self.error: BaseException | None = None
        self.steps_done = 0
        # A model playing several teams, or self-play: SB3 sees TeamVecEnv's agents.
        self.teams: TeamVecEnv | None = None
        self_play = setup.plan.self_play if setup.mode != "inference" else None
        if len(setup.behaviors) > 1 or self_play is not None:
            self.teams = TeamVecEnv(
                LockstepTeams(lockstep, setup.behaviors),
                self_play,
                controller,
                name=setup.name,
                seed=setup.seed,
            )
            base: VecEnv = self.teams
        else:
            base = UnityVecEnv.from_batches(self.shared)
        venv: VecEnv = VecMonitor(base)
        if setup.plan.reward_scale != 1.0:
            venv = VecRewardScale(venv, setup.plan.reward_scale)
        self.normalizer: VecNormalize | None = None
        if setup.plan.normalize:
            keys = [
                key
                for key, spec in zip(
                    _obs_keys(self.shared), setup.spec.observation_specs, strict=True
                )
                if not spec.is_visual
            ]
            if keys:
                self.normalizer = VecNormalize(
                    venv,
                    norm_obs=True,
                    norm_reward=False,
                    clip_obs=NORMALIZED_OBSERVATION_CLIP,
                    gamma=float(setup.plan.kwargs.get("gamma", 0.99)),
                    norm_obs_keys=keys if self.shared.converter.keys else None,
                )
                venv = self.normalizer
        self.venv = venv
        self.signals: dict[str, RewardSignal] = {}
        self.value_heads: SignalValueHeads | None = None
        self.model = self._build_model()
        self.cloning = self._build_cloning(self.model)
        self._last_checkpoint_step = -1

    def progress(self) -> float:
        """Trained steps over ``max_steps`` (what ``measure: progress`` compares)."""
        return float(self.model.num_timesteps) / max(1, self.setup.plan.total_timesteps)

    # -- model ------------------------------------------------------------------------

    def _build_model(self) -> BaseAlgorithm:
        setup, plan = self.setup, self.setup.plan
        cls = plan.algorithm_class()
        pointer = None
        if setup.mode in ("resume", "inference"):
            pointer = read_pointer(setup.run, setup.name)
            if pointer is None and setup.mode == "inference":
                raise FileNotFoundError(
                    f"No checkpoint of behavior {setup.name} in {setup.run.root} (looked for "
                    f"{setup.run.behavior_dir(setup.name) / POINTER}). Train it first, or start "
                    "a new run without --inference."
                )
            if pointer is None:
                # Stopped before its first checkpoint (or new in the configuration).
                logger.warning(
                    "--resume: %s has no checkpoint in %s yet, so it starts from step 0.",
                    setup.name,
                    setup.run.root,
                )
        if pointer is not None:
            model = self._load(cls, setup.run, pointer)
            if setup.mode == "resume":
                self._restore_self_play(pointer)
                self.signals = self._build_signals(model)
                self._check_replay_buffer_takes_signals(model)
                saved = pointer.get("reward_signals")
                folder = setup.run.behavior_dir(setup.name)
                self._restore_signals(folder / saved if saved else None, "--resume")
            logger.info("Resuming %s from step %d.", setup.name, model.num_timesteps)
            if setup.init_path is not None:
                logger.warning(
                    "%s: %s is not used: --%s loads this run's own checkpoint.",
                    setup.name,
                    setup.init_path_key,
                    setup.mode,
                )
        else:
            model = cls(
                plan.policy,
                self.venv,
                seed=setup.seed,
                device=setup.device,
                verbose=0,
                **plan.kwargs,
            )
            self.signals = self._build_signals(model)
            weights = self._initial_weights()
            if weights is not None:
                self._initialize(model, weights)
                if self.signals:
                    self._restore_signals(weights.reward_signals, weights.origin)
        bridge = SB3StatsBridge(setup.stats, plan.algorithm)
        model.set_logger(Logger(folder=None, output_formats=[bridge]))
        return model

    def _initial_weights(self) -> InitialWeights | None:
        """The behavior's init_path wins over --initialize-from's default, as in ML-Agents."""
        setup = self.setup
        if setup.init_path is not None:
            return resolve_init_path(
                setup.init_path, setup.init_path_key, setup.name, setup.initialize_from
            )
        if setup.initialize_from is None:
            return None
        folder = setup.initialize_from.behavior_dir(setup.name)
        pointer = read_pointer(setup.initialize_from, setup.name)
        if pointer is None:
            raise FileNotFoundError(
                f"--initialize-from: run {setup.initialize_from.root} has no checkpoint "
                f"of behavior {setup.name} (looked for {folder / POINTER})."
            )
        origin = f"--initialize-from {setup.initialize_from.run_id!r}"
        return _weights_from_pointer(folder, pointer, origin)

    def _build_signals(self, model: BaseAlgorithm) -> dict[str, RewardSignal]:
        """The plan's curiosity/RND signals for the model's spaces (fresh weights), and for
        the PPO family their value heads."""
        setup = self.setup
        signals: dict[str, RewardSignal] = {}
        for name, settings in setup.plan.reward_signals.items():
            if isinstance(settings, GAILSettings) and self.normalizer is not None:
                settings = replace(settings, normalize_expert=self.normalizer.normalize_obs)
            try:
                signals[name] = settings.build(
                    model.observation_space, model.action_space, setup.device
                )
            except (ValueError, UnityDemoException) as err:
                raise ConfigError(
                    f"reward_signals.{name} of behavior {setup.name}: {err}"
                ) from None
        if signals and setup.plan.signal_value_network is not None:
            self.value_heads = SignalValueHeads(
                model.observation_space,
                [signal.name for signal in signals.values()],
                setup.plan.signal_value_network,
                device=model.device,
            )
        return signals

    def _build_cloning(self, model: BaseAlgorithm) -> BehavioralCloning | None:
        """ML-Agents' BC module for the model's policy: the trainer's initial learning rate,
        its batch size unless the section sets one."""
        settings = self.setup.plan.behavioral_cloning
        if settings is None or self.setup.mode == "inference":
            return None
        normalize = self.normalizer.normalize_obs if self.normalizer is not None else None
        try:
            return settings.build(
                model,
                float(model.lr_schedule(1.0)),
                int(getattr(model, "batch_size", 64)),
                normalize,
            )
        except (ValueError, UnityDemoException) as err:
            raise ConfigError(f"behavioral_cloning of behavior {self.setup.name}: {err}") from None

    def _restore_signals(self, path: Path | None, origin: str) -> None:
        """Load the reward models saved at ``path`` (chosen by ``origin``) into the signals."""
        name = self.setup.name
        if not self.signals:
            return
        if path is None or not path.is_file():
            logger.warning(
                "%s: %s has no reward models (%s); %s start afresh.",
                name,
                origin,
                REWARD_SIGNALS_SUFFIX,
                ", ".join(self.signals),
            )
            return
        try:
            saved = th.load(path, map_location=self.signals_device, weights_only=True)
            for key, signal in self.signals.items():
                if key in saved:
                    signal.load_state_dict(saved[key])
        except Exception as err:
            raise ConfigError(
                f"Behavior {name}: the reward models in {path} (chosen by {origin}) do not fit "
                f"this configuration's reward_signals ({_short_reason(err)}). Keep each signal's "
                "network_settings as they were, or start a new run without --resume / "
                "--initialize-from."
            ) from None
        missing = [key for key in self.signals if key not in saved]
        if missing:
            logger.warning(
                "%s: %s holds no %s model; it starts afresh.", name, path, ", ".join(missing)
            )
        if self.value_heads is not None:
            self._restore_value_heads(self.value_heads, saved.get(VALUE_HEADS_KEY), path)
        restored = [key for key in self.signals if key in saved]
        if restored:
            logger.info("Restored the reward models of %s (%s).", name, ", ".join(restored))

    def _restore_value_heads(
        self, heads: SignalValueHeads, state: dict[str, Any] | None, path: Path
    ) -> None:
        """Load the signals' value heads; heads saved for other signals or another
        ``network_settings`` are only estimates, so they start afresh with a warning."""
        try:
            if state is None:
                raise ValueError("none were saved")
            heads.load_state_dict(state)
        except (ValueError, RuntimeError, KeyError) as err:
            logger.warning(
                "%s: the signal value heads in %s do not fit (%s); they start afresh.",
                self.setup.name,
                path,
                _short_reason(err),
            )

    def _check_replay_buffer_takes_signals(self, model: BaseAlgorithm) -> None:
        """A resumed SAC model keeps its saved replay buffer, which must add signal rewards."""
        buffer = getattr(model, "replay_buffer", None)
        if self.signals and buffer is not None and not isinstance(buffer, RewardSignalReplayMixin):
            raise ConfigError(
                f"--resume: behavior {self.setup.name} now lists reward_signals "
                f"{', '.join(self.signals)}, but its checkpoint was trained without them and its "
                f"replay buffer ({type(buffer).__name__}) cannot add their rewards. Resume "
                "with the reward_signals the run started with, or start a new run from these "
                "weights with --initialize-from."
            )

    def _reward_model_states(self) -> dict[str, dict[str, Any]]:
        """What a ``.reward_signals.pt`` holds: each signal's state, and the value heads'."""
        states = {key: signal.state_dict() for key, signal in self.signals.items()}
        if self.value_heads is not None:
            states[VALUE_HEADS_KEY] = self.value_heads.state_dict()
        return states

    @property
    def signals_device(self) -> th.device:
        return next(iter(self.signals.values())).device

    def _initialize(self, model: BaseAlgorithm, weights: InitialWeights) -> None:
        """Copy ``weights`` into the new ``model`` (and the normaliser), or say why not."""
        setup = self.setup
        try:
            model.set_parameters(str(weights.model), exact_match=True, device=setup.device)
            if weights.normalizer is not None and self.normalizer is not None:
                restore_normalizer(self.normalizer, weights.normalizer)
        except Exception as err:
            raise ConfigError(
                f"Behavior {setup.name} cannot be initialized from {weights.model} (chosen by "
                f"{weights.origin}): {_short_reason(err)}. It must be a complete unity-sb3 "
                "checkpoint of a behavior with the same observations, actions, trainer_type and "
                "network_settings."
            ) from None
        if weights.normalizer is None and self.normalizer is not None:
            logger.warning(
                "%s: %s has no normalizer statistics beside it; observation normalization "
                "starts afresh.",
                setup.name,
                weights.model,
            )
        logger.info("Initialized %s from %s.", setup.name, weights.model)

    def _load(self, cls: type[Any], run: RunDirectory, pointer: dict[str, Any]) -> BaseAlgorithm:
        plan = self.setup.plan
        folder = run.behavior_dir(self.setup.name)
        # The current configuration's schedules and sizes win over the saved ones.
        overrides = {
            key: plan.kwargs[key]
            for key in ("learning_rate", "clip_range", "clip_range_vf", "batch_size", "n_epochs")
            if key in plan.kwargs
        }
        model: BaseAlgorithm = cls.load(
            str(folder / pointer["model"]),
            env=self.venv,
            device=self.setup.device,
            custom_objects=overrides,
        )
        self._load_normalizer(run, pointer)
        replay = pointer.get("replay_buffer")
        if replay and hasattr(model, "load_replay_buffer"):
            model.load_replay_buffer(str(folder / replay))
            logger.info(
                "Restored the replay buffer of %s (%d transitions per agent).",
                self.setup.name,
                model.replay_buffer.size(),  # type: ignore[attr-defined]
            )
        return model

    def _restore_self_play(self, pointer: dict[str, Any]) -> None:
        """--resume continues the league: snapshots, ratings, counters and the learning team
        from the checkpoint's ``.self_play.pt``; without one (a run from mlagents-learn, which
        keeps only the rating), the ELO saved in ``training_status.json``."""
        teams, setup = self.teams, self.setup
        if teams is None or teams.ghost is None:
            return
        saved = pointer.get("self_play")
        if saved:
            path = setup.run.behavior_dir(setup.name) / saved
            try:
                teams.load_state_dict(th.load(path, weights_only=True))
            except (OSError, RuntimeError, KeyError, ValueError, pickle.UnpicklingError) as err:
                raise ConfigError(
                    f"--resume: could not read the self-play league of {setup.name} from "
                    f"{path} ({_short_reason(err)}). Restore the file, or start a new run "
                    "without --resume."
                ) from err
            return
        elo = setup.run.elo(setup.name)
        if elo is not None:
            teams.ghost.elos[LATEST] = elo

    def _load_normalizer(self, run: RunDirectory, pointer: dict[str, Any]) -> None:
        name = pointer.get("normalizer")
        if name and self.normalizer is not None:
            restore_normalizer(self.normalizer, run.behavior_dir(self.setup.name) / name)

    # -- running ----------------------------------------------------------------------

    def run(self) -> None:
        """Thread body: learn (or act), save, then keep acting for the other behaviors."""
        setup = self.setup
        try:
            with setup.timers.block(f"{setup.name}.learn", parallel=True):
                if setup.mode == "inference":
                    self._act_until_stopped()
                else:
                    self._learn()
        except BaseException as err:
            self.error = err
            self.lockstep.fail(err)
        finally:
            if setup.mode != "inference":
                try:
                    self.save_checkpoint(final=True)
                except Exception as err:  # keep the first error; report this one too
                    logger.error("Could not save the final model of %s: %s", setup.name, err)
                    self.error = self.error or err
            for behavior in setup.behaviors:
                self.lockstep.retire(behavior, self._autopilot(behavior))

    def _learn(self) -> None:
        setup, model = self.setup, self.model
        remaining = setup.plan.total_timesteps - model.num_timesteps
        if remaining <= 0:
            logger.info(
                "%s already reached max_steps (%d); nothing to train.",
                setup.name,
                setup.plan.total_timesteps,
            )
            return
        callbacks: list[BaseCallback] = [_RunCallback(self)]
        if setup.plan.entropy_schedule is not None:
            callbacks.append(EntropyCoefficientSchedule(setup.plan.entropy_schedule))
        if self.signals:
            callbacks.append(self._reward_signals_callback())
        if self.cloning is not None:
            callbacks.append(BehavioralCloningCallback(self.cloning, stats=setup.stats.add))
        if self.teams is not None and self.teams.ghost is not None:
            callbacks.append(SelfPlayCallback(self.teams, stats=setup.stats.add))
        model.learn(
            total_timesteps=remaining,
            callback=CallbackList(callbacks),
            reset_num_timesteps=setup.mode != "resume",
            log_interval=1,
        )

    def _reward_signals_callback(self) -> BaseCallback:
        """Adds the intrinsic rewards and trains the reward models (stats to the summaries;
        the extrinsic episode reward is reported by :meth:`record_episodes`)."""
        plan, signals = self.setup.plan, list(self.signals.values())
        if plan.on_policy:
            return RewardSignalsCallback(
                signals,
                stats=self.setup.stats.add,
                log_extrinsic=False,
                value_heads=self.value_heads,
                extrinsic=plan.extrinsic,
            )
        return OffPolicyRewardSignalsCallback(
            signals,
            steps_per_update=plan.reward_signal_steps_per_update,
            stats=self.setup.stats.add,
            log_extrinsic=False,
        )

    def _act_until_stopped(self) -> None:
        """--inference: run the policy without updates until max_steps or Ctrl+C."""
        setup, venv = self.setup, self.venv
        obs = venv.reset()
        steps = 0
        next_summary = setup.summary_freq
        dones = np.ones(venv.num_envs, dtype=bool)
        predict = self._predictor(lambda: np.stack(venv.env_method("action_masks")), lambda: dones)
        while not setup.stop.is_set() and steps < setup.plan.total_timesteps:
            actions = predict(obs)
            obs, _, dones, infos = venv.step(actions)
            steps += venv.num_envs
            self.record_episodes(infos)
            if steps >= next_summary:
                setup.stats.write_summary(steps, training=False)
                next_summary += setup.summary_freq
        self.steps_done = steps

    def _predictor(self, masks: Callable[[], np.ndarray], dones: Callable[[], np.ndarray]) -> Any:
        """obs -> actions with the model; ``masks`` gives the allowed actions, ``dones`` the
        episodes that ended at the last step (a recurrent policy's memory restarts there)."""
        model = self.model
        deterministic = self.setup.plan.deterministic  # --deterministic, as mlagents-learn
        state: Any = None

        def predict(obs: Any) -> np.ndarray:
            nonlocal state
            if self.setup.plan.algorithm in MASKED_ALGORITHMS:
                actions, _ = model.predict(  # type: ignore[call-arg]
                    obs, deterministic=deterministic, action_masks=masks()
                )
            elif self.setup.plan.algorithm == "RecurrentPPO":
                starts = dones() if state is not None else None
                actions, state = model.predict(
                    obs, state=state, episode_start=starts, deterministic=deterministic
                )
            else:
                actions, _ = model.predict(obs, deterministic=deterministic)
            return np.asarray(actions)

        return predict

    def _autopilot(self, behavior: str) -> Any:
        """Acts for ``behavior`` once training ended (other behaviors may still train)."""
        shared, normalizer = self.lockstep.behavior(behavior), self.normalizer
        predict = self._predictor(shared.action_masks, lambda: shared.last.dones)

        def act(step: SlotStep) -> ActionTuple:
            obs = shared.observations(step)
            if normalizer is not None:
                obs = normalizer.normalize_obs(obs)
            return shared.converter.actions(predict(obs))

        return act

    def record_episodes(self, infos: list[dict[str, Any]]) -> None:
        scale = self.setup.plan.reward_scale
        for info in infos:
            episode = info.get("episode")
            if episode is not None:
                if self.setup.on_episode is not None:
                    self.setup.on_episode(float(episode["r"]))
                self.setup.stats.add(CUMULATIVE_REWARD, float(episode["r"]))
                self.setup.stats.add(EPISODE_LENGTH, float(episode["l"]))
                if self.setup.plan.extrinsic:
                    self.setup.stats.add("Policy/Extrinsic Reward", float(episode["r"]) * scale)

    # -- checkpoints ------------------------------------------------------------------

    def save_checkpoint(self, final: bool = False) -> None:
        """Write a complete checkpoint set, then point ``checkpoint.json`` at it."""
        setup, model = self.setup, self.model
        step = int(model.num_timesteps)
        if step == self._last_checkpoint_step and not final:
            return
        run = setup.run
        folder = run.behavior_dir(setup.name)
        folder.mkdir(parents=True, exist_ok=True)
        with setup.timers.block(f"{setup.name}.checkpoint"):
            spec_file = run.behavior_spec_file(setup.name)
            if not spec_file.exists():
                write_json(spec_file, behavior_spec_to_dict(setup.spec))
            model_path = run.checkpoint(setup.name, step)
            if step != self._last_checkpoint_step or not model_path.exists():
                with atomic_writer(model_path) as handle:
                    model.save(cast(BufferedIOBase, handle))
            pointer: dict[str, Any] = {"steps": step, "model": model_path.name}
            auxiliary = [model_path]
            if self.normalizer is not None:
                path = folder / f"{setup.name}-{step}.normalizer.npz"
                with atomic_writer(path) as handle:
                    np.savez(handle, **_normalizer_arrays(self.normalizer))  # type: ignore[arg-type]
                pointer["normalizer"] = path.name
                auxiliary.append(path)
            if getattr(model, "replay_buffer", None) is not None and _saves_replay(setup):
                path = folder / f"{setup.name}-{step}.replay.pkl"
                with atomic_writer(path) as handle:
                    model.save_replay_buffer(handle)  # type: ignore[attr-defined]
                pointer["replay_buffer"] = path.name
                auxiliary.append(path)
            if self.teams is not None and self.teams.ghost is not None:
                path = folder / f"{setup.name}-{step}{SELF_PLAY_SUFFIX}"
                with atomic_writer(path) as handle:
                    th.save(self.teams.state_dict(), handle)
                pointer["self_play"] = path.name
                auxiliary.append(path)
                run.set_elo(setup.name, self.teams.ghost.current_elo)
            if self.signals:
                path = folder / f"{setup.name}-{step}{REWARD_SIGNALS_SUFFIX}"
                with atomic_writer(path) as handle:
                    th.save(self._reward_model_states(), handle)
                pointer["reward_signals"] = path.name
                auxiliary.append(path)
            onnx_path = self._export_onnx(folder / f"{setup.name}-{step}.onnx")
            if onnx_path is not None:
                pointer["onnx"] = onnx_path.name
            write_json(folder / POINTER, pointer)
            self._last_checkpoint_step = step
            reward = setup.stats.mean(CUMULATIVE_REWARD)
            record = CheckpointRecord(
                steps=step,
                file_path=run.relative(onnx_path or model_path),
                reward=reward,
                creation_time=time.time(),
                auxillary_file_paths=[run.relative(p) for p in auxiliary if p != onnx_path],
            )
            if final:
                final_model = run.final_model(setup.name, ".zip")
                with atomic_writer(final_model) as handle:
                    model.save(cast(BufferedIOBase, handle))
                if onnx_path is not None:
                    with atomic_writer(run.final_model(setup.name)) as handle:
                        handle.write(onnx_path.read_bytes())
                record = CheckpointRecord(
                    steps=step,
                    file_path=run.relative(
                        run.final_model(setup.name) if onnx_path else final_model
                    ),
                    reward=reward,
                    creation_time=record.creation_time,
                    auxillary_file_paths=record.auxillary_file_paths,
                )
            dropped = run.record_checkpoint(setup.name, record, setup.keep_checkpoints, final)
            for old in dropped:
                _remove_checkpoint_files(folder, setup.name, old.steps, keep_step=step)
        logger.info("Exported %s", record.file_path)

    def _export_onnx(self, path: Path) -> Path | None:
        try:
            from sb3_ext.onnx_export import export_onnx
        except ImportError:
            return None
        try:
            export_onnx(self.model, self.setup.spec, path, normalization=self.normalizer)
        except Exception as err:
            logger.warning("Could not export %s to ONNX: %s", self.setup.name, err)
            return None
        return path


class _RunCallback(BaseCallback):
    """Summaries, checkpoints and the stop request, at the steps mlagents-learn uses."""

    def __init__(self, learner: BehaviorLearner) -> None:
        super().__init__()
        self.learner = learner
        setup = learner.setup
        self._progress: Any = None
        self._next_summary = 0
        self._next_checkpoint = 0
        self._summary_freq = setup.summary_freq
        self._checkpoint_interval = setup.checkpoint_interval
        self._position = setup.progress_position

    def _on_training_start(self) -> None:
        step = self.model.num_timesteps
        self._next_summary = (step // self._summary_freq + 1) * self._summary_freq
        self._next_checkpoint = (step // self._checkpoint_interval + 1) * self._checkpoint_interval
        if self._position is not None and sys.stderr.isatty():
            from tqdm import tqdm

            self._progress = tqdm(
                total=self.learner.setup.plan.total_timesteps,
                initial=step,
                position=self._position,
                desc=self.learner.setup.name,
                unit="step",
                leave=False,
            )

    def _on_step(self) -> bool:
        learner = self.learner
        learner.record_episodes(self.locals.get("infos", []))
        step = self.model.num_timesteps
        if self._progress is not None:
            self._progress.update(step - self._progress.n)
        if step >= self._next_summary:
            learner.setup.stats.write_summary(step, training=True)
            self._next_summary = (step // self._summary_freq + 1) * self._summary_freq
        if step >= self._next_checkpoint:
            learner.save_checkpoint()
            interval = self._checkpoint_interval
            self._next_checkpoint = (step // interval + 1) * interval
        return not learner.setup.stop.is_set()

    def _on_rollout_end(self) -> None:
        buffer = getattr(self.model, "rollout_buffer", None)
        if buffer is not None and buffer.full:
            # SB3's value head learns the extrinsic return (the signals report their own).
            self.learner.setup.stats.add(
                "Policy/Extrinsic Value Estimate", float(np.mean(buffer.values))
            )

    def _on_training_end(self) -> None:
        if self._progress is not None:
            self._progress.close()


def _short_reason(err: Exception) -> str:
    """An exception's message on one line, at most 300 characters (for error paragraphs)."""
    reason = " ".join(str(err).split())
    return reason if len(reason) <= 300 else reason[:297] + "..."


def _obs_keys(shared: SharedBehavior) -> list[str]:
    keys = shared.converter.keys
    return list(keys) if keys else ["obs"]


def _normalizer_arrays(normalizer: VecNormalize) -> dict[str, np.ndarray]:
    stats = normalizer.obs_rms
    items = stats.items() if isinstance(stats, dict) else [("", stats)]
    arrays: dict[str, np.ndarray] = {}
    for key, rms in items:
        prefix = f"{key}." if key else ""
        arrays[f"{prefix}mean"] = np.asarray(rms.mean)
        arrays[f"{prefix}var"] = np.asarray(rms.var)
        arrays[f"{prefix}count"] = np.asarray(rms.count)
    return arrays


def restore_normalizer(normalizer: VecNormalize, path: Path) -> None:
    """Load statistics saved with a checkpoint (``.normalizer.npz``) into ``normalizer``."""
    with np.load(path) as data:
        stats = normalizer.obs_rms
        if isinstance(stats, dict):
            for key, rms in stats.items():
                _restore(rms, data, f"{key}.")
        else:
            _restore(stats, data, "")


def _restore(rms: RunningMeanStd, data: Any, prefix: str) -> None:
    rms.mean = np.asarray(data[f"{prefix}mean"], dtype=np.float64)
    rms.var = np.asarray(data[f"{prefix}var"], dtype=np.float64)
    rms.count = float(data[f"{prefix}count"])


def _saves_replay(setup: LearnerSetup) -> bool:
    return setup.plan.algorithm in ("SAC", "DiscreteSAC") and setup.save_replay_buffer


def _remove_checkpoint_files(folder: Path, name: str, step: int, keep_step: int) -> None:
    if step == keep_step:
        return
    for path in folder.glob(f"{name}-{step}.*"):
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)
