"""mlagents-learn's flags and their precedence over the YAML file."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import pytest

pytest.importorskip("pydantic")

from cli.config_errors import ConfigError
from cli.learn_arguments import (
    EXPLICIT_DEST,
    FLAG_TARGETS,
    add_learn_arguments,
    explicit_flags,
    resolve_run_options,
)
from cli.training_config import (
    ConstantSampler,
    RunOptions,
    TrainerSettings,
    to_resolved_dict,
)
from tests.conftest import FIXTURES

CONFIGS = FIXTURES / "configs"

FILE_CONFIG = """
behaviors:
  3DBall:
    trainer_type: ppo
    network_settings: {deterministic: true}
env_settings:
  env_path: builtin:3DBall
  num_envs: 2
  base_port: 6000
  seed: 42
engine_settings:
  time_scale: 5
  no_graphics: true
checkpoint_settings:
  run_id: from-file
  results_dir: out
torch_settings:
  device: cuda
debug: true
"""


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="unity-sb3 learn")
    add_learn_arguments(parser)
    return parser.parse_args(list(argv))


def _resolve(*argv: str) -> RunOptions:
    return resolve_run_options(_parse(*argv))


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(FILE_CONFIG)
    return path


def test_flags_names_and_defaults_are_mlagents_learns() -> None:
    parser = argparse.ArgumentParser()
    add_learn_arguments(parser)
    options = {s for action in parser._actions for s in action.option_strings}
    assert options == {
        "-h",
        "--help",
        "--env",
        "--load",
        "--resume",
        "--deterministic",
        "--force",
        "--run-id",
        "--initialize-from",
        "--seed",
        "--train",
        "--inference",
        "--base-port",
        "--num-envs",
        "--num-areas",
        "--debug",
        "--env-args",
        "--max-lifetime-restarts",
        "--restarts-rate-limit-n",
        "--restarts-rate-limit-period-s",
        "--torch",
        "--tensorflow",
        "--results-dir",
        "--curriculum",
        "--sampler",
        "--width",
        "--height",
        "--quality-level",
        "--time-scale",
        "--target-frame-rate",
        "--capture-frame-rate",
        "--no-graphics",
        "--no-graphics-monitor",
        "--timeout-wait",
        "--torch-device",
        # Ours, beyond mlagents-learn: torch's CPU threads (mlagents-learn fixes them), and
        # players on a Ray cluster.
        "--torch-threads",
        "--ray-address",
        "--ray-cpus-per-player",
        "--ray-players-per-host",
        "--ray-resource",
    }
    args = _parse()
    assert args.trainer_config_path is None
    assert (args.env_path, args.run_id, args.device, args.env_args) == (None, "ppo", None, None)
    assert (args.base_port, args.num_envs, args.num_areas, args.seed) == (5005, 1, 1, -1)
    assert (args.width, args.height, args.quality_level, args.time_scale) == (84, 84, 5, 20)
    assert (args.target_frame_rate, args.capture_frame_rate, args.timeout_wait) == (-1, 60, 60)
    assert (args.max_lifetime_restarts, args.restarts_rate_limit_n) == (10, 1)
    assert args.restarts_rate_limit_period_s == 60
    assert args.results_dir == "results"
    assert (args.ray_address, args.ray_cpus_per_player, args.ray_resources) == (None, 1.0, None)
    assert args.ray_players_per_host == 1
    assert explicit_flags(args) == frozenset()
    # Every tracked flag has a place in the configuration.
    tracked = {
        a.dest for a in parser._actions if a.option_strings and type(a).__name__ != "_Removed"
    } - {"help", "curriculum", "sampler", "deterministic"}
    assert tracked == set(FLAG_TARGETS)


def test_no_file_and_no_flags_gives_mlagents_defaults() -> None:
    options = _resolve()
    assert to_resolved_dict(options) == to_resolved_dict(RunOptions())
    assert options.checkpoint_settings.run_id == "ppo"
    assert options.settings_for("AnyBehavior") == TrainerSettings()


def test_unset_flags_keep_the_files_values(config_file: Path) -> None:
    options = _resolve(str(config_file))
    env = options.env_settings
    assert (env.env_path, env.num_envs, env.base_port, env.seed) == ("builtin:3DBall", 2, 6000, 42)
    assert (options.engine_settings.time_scale, options.engine_settings.no_graphics) == (5, True)
    assert options.checkpoint_settings.run_id == "from-file"
    assert options.checkpoint_settings.results_dir == "out"
    assert options.torch_settings.device == "cuda"
    assert options.debug is True
    assert options.behaviors["3DBall"].network_settings.deterministic is True


def test_explicit_flags_override_the_file(config_file: Path) -> None:
    args = _parse(
        str(config_file),
        "--run-id",
        "ppo",  # the default value, but given: it still wins over the file
        "--num-envs",
        "3",
        "--env",
        "builtin:Basic",
        "--time-scale",
        "1",
        "--torch-device",
        "cpu",
        "--resume",
        "--inference",
        "--no-graphics-monitor",
        "--results-dir",
        "elsewhere",
        "--env-args",
        "--level",
        "3",
    )
    assert explicit_flags(args) == {
        "run_id",
        "num_envs",
        "env_path",
        "time_scale",
        "device",
        "resume",
        "inference",
        "no_graphics_monitor",
        "results_dir",
        "env_args",
    }
    options = resolve_run_options(args)
    assert options.checkpoint_settings.run_id == "ppo"
    assert options.checkpoint_settings.write_path == Path("elsewhere/ppo")
    assert (options.checkpoint_settings.resume, options.checkpoint_settings.inference) == (
        True,
        True,
    )
    env = options.env_settings
    assert (env.env_path, env.num_envs, env.env_args) == ("builtin:Basic", 3, ["--level", "3"])
    assert (env.base_port, env.seed) == (6000, 42)  # not given: from the file
    assert options.engine_settings.time_scale == 1.0
    assert options.engine_settings.no_graphics is True
    assert options.engine_settings.no_graphics_monitor is True
    assert options.torch_settings.device == "cpu"


def test_deterministic_applies_to_every_behavior_and_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("default_settings: {max_steps: 10}\nbehaviors:\n  A: {}\n  B: {}\n")
    assert not _resolve(str(path)).behaviors["A"].network_settings.deterministic
    options = _resolve(str(path), "--deterministic")
    assert all(b.network_settings.deterministic for b in options.behaviors.values())
    assert options.settings_for("Unlisted").network_settings.deterministic


def test_legacy_curriculum_and_sampler_files_merge(caplog: pytest.LogCaptureFixture) -> None:
    config = CONFIGS / "ppo" / "WallJump.yaml"
    curriculum = CONFIGS / "legacy" / "wall_jump_curriculum.yaml"
    sampler = CONFIGS / "legacy" / "3dball_sampler.yaml"
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        options = _resolve(str(config), "--curriculum", str(curriculum), "--sampler", str(sampler))
    messages = [r.getMessage() for r in caplog.records if r.name == "unity_sb3"]
    assert len(messages) == 1
    assert messages[0].startswith(
        f"{config} and {curriculum} and {sampler} use an old ML-Agents format (pre-0.17 --sampler "
        "file; pre-0.17 --curriculum file), converted in memory. To convert it for good, run: "
        f"unity-sb3 upgrade-config {config} --curriculum {curriculum} --sampler {sampler} "
        "-o NEW.yaml\n"
    )
    assert options.environment_parameters is not None
    assert set(options.environment_parameters) == {
        "mass",
        "gravity",
        "scale",
        "big_wall_min_height",
        "big_wall_max_height",
        "small_wall_height",
    }
    lessons = options.environment_parameters["small_wall_height"].curriculum
    values = [lesson.value for lesson in lessons]
    assert all(isinstance(value, ConstantSampler) for value in values)
    assert [v.sampler_parameters.value for v in values if isinstance(v, ConstantSampler)] == [
        1.5,
        2.0,
        2.5,
        4.0,
    ]
    assert list(options.behaviors) == ["BigWallJump", "SmallWallJump"]


def test_legacy_trainer_config_through_the_command_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        options = _resolve(str(CONFIGS / "legacy" / "trainer_config.yaml"), "--run-id", "old")
    assert len(caplog.records) == 1
    assert options.behaviors["3DBall"].hyperparameters.batch_size == 64
    assert options.checkpoint_settings.run_id == "old"


def test_resume_and_initialize_from(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("checkpoint_settings: {initialize_from: earlier}\n")
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        resumed = _resolve(str(path), "--resume").checkpoint_settings
    assert (resumed.resume, resumed.initialize_from) == (True, None)
    assert caplog.records[-1].getMessage() == (
        "Both resume and initialize_from=earlier are set; resuming and ignoring initialize_from."
    )
    path.write_text("checkpoint_settings: {resume: true}\n")
    initialized = _resolve(str(path), "--initialize-from", "earlier").checkpoint_settings
    assert (initialized.resume, initialized.initialize_from) == (False, "earlier")
    assert initialized.maybe_init_path == Path("results/earlier")
    path.write_text("checkpoint_settings: {resume: true, initialize_from: earlier}\n")
    from_file = _resolve(str(path)).checkpoint_settings
    assert (from_file.resume, from_file.initialize_from) == (True, None)
    loaded = _parse("--load")
    assert explicit_flags(loaded) == {"load_model", "resume"}
    checkpoint = resolve_run_options(loaded).checkpoint_settings
    assert (checkpoint.load_model, checkpoint.resume) == (True, True)


def test_bad_flag_values_name_the_flag(config_file: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        _resolve(str(config_file), "--num-envs", "0", "--base-port", "70000")
    assert str(caught.value) == (
        f"{config_file}: the training configuration has 2 problems:\n"
        "  - env_settings.base_port: got 70000 (an integer), expected a value of at most 65535 "
        "[set by --base-port]\n"
        "  - env_settings.num_envs: got 0 (an integer), expected a value greater than 0 "
        "[set by --num-envs]\n"
        "Fix them and run again; docs/config.md lists every key with its default."
    )
    with pytest.raises(ConfigError) as caught:
        _resolve("--num-envs", "2")
    assert str(caught.value).startswith(
        "The command-line options: the training configuration has a problem:\n"
        "  - env_settings.num_envs: num_envs is 2 but no env_path (--env) is set"
    )


def test_unlisted_behavior_needs_settings_when_a_file_is_given(config_file: Path) -> None:
    options = _resolve(str(config_file))
    with pytest.raises(ConfigError, match="Behavior 'Basic' is not listed in"):
        options.settings_for("Basic")


def test_explicit_flags_are_not_shared_between_parses() -> None:
    parser = argparse.ArgumentParser()
    add_learn_arguments(parser)
    first = parser.parse_args(["--debug"])
    second = parser.parse_args([])
    assert explicit_flags(first) == {"debug"}
    assert explicit_flags(second) == frozenset()
    assert getattr(second, EXPLICIT_DEST) == frozenset()


def test_torch_threads_flag_and_default_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    from cli import torch_threads

    assert _resolve("--torch-threads=3").torch_settings.num_threads == 3
    assert _resolve().torch_settings.num_threads is None
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("MKL_NUM_THREADS", raising=False)
        # (cores, threads for vector networks, threads for visual ones)
        for cores, vector, visual in [(1, 1, 1), (2, 1, 2), (6, 3, 4), (16, 4, 4)]:
            monkeypatch.setattr(torch_threads, "available_cpus", lambda n=cores: n)
            assert torch_threads.configure_torch_threads(None, visual=False) == vector
            assert torch.get_num_threads() == vector
            assert torch_threads.configure_torch_threads(None, visual=True) == visual
            assert torch.get_num_threads() == visual
        assert torch_threads.configure_torch_threads(2, visual=False) == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "3")
        torch.set_num_threads(3)
        assert torch_threads.configure_torch_threads(None, visual=True) is None
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)


def test_ray_flags_reach_env_settings_and_bad_resources_are_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = _resolve(
        "--ray-address=auto",
        "--ray-cpus-per-player=0.5",
        "--ray-players-per-host=4",
        "--ray-resource",
        "unity_build=1",
        "--ray-resource=gpu_node=0.25",
    )
    env = options.env_settings
    assert (env.ray_address, env.ray_cpus_per_player, env.ray_players_per_host) == (
        "auto",
        0.5,
        4,
    )
    assert env.ray_resources == {"unity_build": 1.0, "gpu_node": 0.25}
    for bad in ("unity_build", "unity_build=0", "=1", "unity_build=many"):
        with pytest.raises(SystemExit):
            _parse("--ray-resource", bad)
        assert f"--ray-resource {bad}: expected NAME=AMOUNT" in capsys.readouterr().err


def test_ray_settings_without_an_address_are_named_in_a_note() -> None:
    from cli.training_environment import player_notes, ray_players

    options = _resolve("--ray-cpus-per-player=2", "--ray-resource=unity_build=1")
    assert ray_players(options) is None
    assert (
        "env_settings.ray_cpus_per_player, ray_resources: ignored, since the players run on "
        "this machine; set env_settings.ray_address (--ray-address) to run them on a Ray "
        "cluster."
    ) in player_notes(options)
    assert not any("ray" in note for note in player_notes(_resolve()))
    local = ray_players(_resolve("--ray-address=local", "--ray-players-per-host=3"))
    assert local is not None and (local.address, local.players_per_host) == (None, 3)
