"""``unity-sb3 learn``: mlagents-learn's command line, SB3 underneath.

Reads the training configuration (current or legacy format), starts the players, trains one
SB3 model per behavior (playing all its teams; with ``self_play``, one learning team at a time
against snapshots) at the same time on the same players, advances the curriculum of the
environment parameters after every step (:mod:`cli.curriculum_driver`), and writes
``results/<run-id>/`` as mlagents-learn does (see :mod:`cli.run_artifacts`). Ctrl+C once
saves every model and exits; a second Ctrl+C stops without waiting.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType

import yaml

from cli.behavior_learner import BehaviorLearner, LearnerSetup, Mode
from cli.command import Command
from cli.config_errors import ConfigError
from cli.curriculum_driver import CurriculumDriver, check_criteria_behaviors
from cli.learn_arguments import add_learn_arguments, resolve_run_options
from cli.run_artifacts import RunDirectory, remove_partial_files, write_json, write_yaml
from cli.run_timers import RunTimers
from cli.sb3_translation import TranslationError, plans_for
from cli.torch_threads import configure_torch_threads
from cli.training_config import RunOptions, SACSettings, check_demo_paths, to_resolved_dict
from cli.training_environment import (
    curriculum_from_options,
    player_notes,
    run_seed,
    worker_settings,
)
from cli.training_stats import BehaviorStats
from sb3_ext.self_play import SelfPlayController
from unity_gym import __version__
from unity_gym.exception import UnityException
from unity_gym.lockstep_behaviors import LockstepBehaviors
from unity_gym.ray_players import placement
from unity_gym.side_channel.stats_side_channel import StatsSideChannel

logger = logging.getLogger("unity_sb3")


class LearnError(Exception):
    """A problem the user can fix; its text is the whole message."""


def _prepare_run_directory(options: RunOptions) -> tuple[RunDirectory, Mode]:
    checkpoint = options.checkpoint_settings
    run = RunDirectory(Path(checkpoint.results_dir), checkpoint.run_id, _metadata())
    mode: Mode = "inference" if checkpoint.inference else "resume" if checkpoint.resume else "train"
    if mode == "train" and run.has_previous_run():
        if not checkpoint.force:
            raise LearnError(
                f"Previous data from run ID {run.run_id!r} was found in {run.root}. Use "
                "--resume to continue that run, or --force to overwrite it (or choose a new "
                "--run-id)."
            )
        shutil.rmtree(run.root)
    if mode != "train" and not run.root.exists():
        flag = "--inference" if mode == "inference" else "--resume"
        raise LearnError(
            f"{flag} was given but run ID {run.run_id!r} has no previous data in {run.root}. "
            f"Train it first (without {flag}), or check --run-id and --results-dir."
        )
    for leftover in remove_partial_files(run.root):
        logger.info("Removed %s, left by an interrupted write.", leftover)
    run.root.mkdir(parents=True, exist_ok=True)
    run.load_status()
    return run, mode


@contextmanager
def _interrupts(stop: threading.Event) -> Iterator[None]:
    """First Ctrl+C (or SIGTERM) asks the learners to save and stop; the second aborts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        logger.info("Stopping: saving the models (press Ctrl+C again to abort).")
        stop.set()

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _metadata() -> dict[str, str]:
    import numpy
    import stable_baselines3
    import torch

    return {
        "unity_sb3_version": __version__,
        "stable_baselines3_version": stable_baselines3.__version__,
        "torch_version": torch.__version__,
        "numpy_version": numpy.__version__,
    }


def run_learn(options: RunOptions) -> int:
    """Train as ``options`` say; returns the exit code."""
    check_demo_paths(options)
    run, mode = _prepare_run_directory(options)
    timers = RunTimers()
    write_yaml(run.configuration, to_resolved_dict(options))
    stop = threading.Event()
    stats_channels: list[StatsSideChannel] = []

    def side_channels(index: int) -> list[StatsSideChannel]:
        channel = StatsSideChannel()
        stats_channels.append(channel)
        return [channel]

    curriculum, parameter_notes = curriculum_from_options(options, run_seed(options))
    for note in [*parameter_notes, *player_notes(options)]:
        logger.warning(note)
    if mode == "resume" and run.lessons:
        curriculum.load_state_dict({k: {"lesson_num": v} for k, v in run.lessons.items()})
    settings = worker_settings(options, run.run_logs, side_channels, curriculum.values())
    with timers.block("run_training.setup"):
        lockstep = LockstepBehaviors(settings, int(options.env_settings.num_envs))
    if settings.ray_players is not None:
        logger.info(placement(lockstep.envs))
    learners: list[BehaviorLearner] = []
    try:
        plans = plans_for(options, lockstep)
        check_criteria_behaviors(curriculum, [entry.name for entry in plans])
        visual = any(
            observation.is_visual
            for spec in lockstep.specs.values()
            for observation in spec.observation_specs
        )
        torch_threads = configure_torch_threads(options.torch_settings.num_threads, visual)
        if torch_threads is not None:
            logger.debug("torch trains with %d CPU thread(s).", torch_threads)
        initialize_from = options.checkpoint_settings.initialize_from
        source = (
            RunDirectory(Path(options.checkpoint_settings.results_dir), initialize_from)
            if initialize_from and mode == "train"
            else None
        )
        stats_by_behavior: list[BehaviorStats] = []
        controller = SelfPlayController(restart=lockstep.request_reset)
        for position, entry in enumerate(plans):
            name, trainer, plan, behavior = (
                entry.name,
                entry.settings,
                entry.plan,
                entry.behaviors[0],
            )
            for note in plan.notes:
                logger.warning("%s: %s", name, note)
            stats = BehaviorStats(name, run.behavior_dir(name), timers)
            stats.add_text("Hyperparameters", yaml.safe_dump(trainer.model_dump(mode="json")))
            stats_by_behavior.append(stats)
            logger.info(
                "%s: %s(%s) on %d agents, max_steps %d.",
                name,
                plan.algorithm,
                plan.policy,
                plan.n_agents,
                plan.total_timesteps,
            )
            interval = int(trainer.checkpoint_interval)
            if trainer.even_checkpoints:
                interval = max(1, int(trainer.max_steps) // max(1, int(trainer.keep_checkpoints)))
            setup = LearnerSetup(
                name=name,
                behaviors=entry.behaviors,
                spec=lockstep.specs[behavior],
                plan=plan,
                run=run,
                stats=stats,
                timers=timers,
                stop=stop,
                mode=mode,
                summary_freq=int(trainer.summary_freq),
                checkpoint_interval=interval,
                keep_checkpoints=int(trainer.keep_checkpoints),
                seed=_seed(options),
                device=options.torch_settings.device or "auto",
                initialize_from=source,
                progress_position=position,
                save_replay_buffer=isinstance(trainer.hyperparameters, SACSettings)
                and trainer.hyperparameters.save_replay_buffer,
                init_path=trainer.init_path,
                init_path_key=options.settings_key(behavior, "init_path"),
                on_episode=partial(curriculum.record_episode, name),
            )
            learners.append(BehaviorLearner(setup, lockstep, controller))

        def drain_stats() -> None:
            for channel in stats_channels:
                collected = channel.get_and_reset_stats()
                if collected:
                    for stats in stats_by_behavior:
                        stats.add_environment_stats(collected)

        lockstep.step_listeners.append(drain_stats)
        if curriculum.lessons:
            driver = CurriculumDriver(
                curriculum,
                lockstep,
                run,
                {learner.setup.name: learner.progress for learner in learners},
                stats_by_behavior,
            )
            driver.log_lessons()
            lockstep.step_listeners.append(driver.after_step)
        with _interrupts(stop), timers.block("TrainerController.start_learning"):
            threads = [
                threading.Thread(target=learner.run, name=learner.setup.name, daemon=True)
                for learner in learners
            ]
            for thread in threads:
                thread.start()
            try:
                while any(thread.is_alive() for thread in threads):
                    for thread in threads:
                        thread.join(timeout=0.2)
            except KeyboardInterrupt:
                logger.warning("Aborted; models were not saved since the last checkpoint.")
                lockstep.fail(KeyboardInterrupt("aborted"))
                return 130
    finally:
        lockstep.close()
        for learner in learners:
            learner.setup.stats.close()
        write_json(run.timers_file, timers.to_dict())
        run.save_status()
    errors = [learner for learner in learners if learner.error is not None]
    if errors:
        first = errors[0]
        raise LearnError(f"Training of {first.setup.name} failed: {first.error}") from first.error
    return 0


def _seed(options: RunOptions) -> int | None:
    seed = int(options.env_settings.seed)
    return None if seed == -1 else seed


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_learn_arguments(parser)


def run(args: argparse.Namespace) -> int:
    with _console_logging(bool(getattr(args, "debug", False))):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        options = resolve_run_options(args)
        return run_learn(options)
    except (ConfigError, LearnError, TranslationError, UnityException, FileNotFoundError) as err:
        print(f"unity-sb3 learn: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("unity-sb3 learn: interrupted before training started.", file=sys.stderr)
        return 130


class _ConsoleHandler(logging.Handler):
    """Writes to whatever ``sys.stdout`` is at the time (tests and tools swap it), above the
    progress bars rather than through them."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        try:
            tqdm.write(self.format(record), file=sys.stdout)
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


@contextmanager
def _console_logging(debug: bool) -> Iterator[None]:
    """Training messages and the environment's (e.g. "press Play") on the console while the
    command runs; the loggers are left as they were afterwards."""
    loggers = [logging.getLogger(name) for name in ("unity_sb3", "unity_gym")]
    handler = _ConsoleHandler()
    handler.setFormatter(logging.Formatter("[%(levelname)s] %(message)s"))
    levels = [log.level for log in loggers]
    for log in loggers:
        log.addHandler(handler)
        log.setLevel(logging.DEBUG if debug else logging.INFO)
    try:
        yield
    finally:
        for log, level in zip(loggers, levels, strict=True):
            log.removeHandler(handler)
            log.setLevel(level)


COMMAND = Command(
    name="learn",
    help="Train the behaviors of a Unity scene (or a built-in player) with SB3.",
    description=(
        "Train with an ML-Agents training configuration file, as mlagents-learn does: same "
        "flags, same results/<run-id>/ folder. --env builtin:NAME trains a built-in player."
    ),
    add_arguments=add_arguments,
    run=run,
)
