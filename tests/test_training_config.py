"""The training-configuration schema: ML-Agents release 21 files, defaults, merging, messages."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("pydantic")

import yaml

from cli.config_errors import ConfigError
from cli.training_config import (
    GAILSettings,
    PPOSettings,
    RNDSettings,
    RunOptions,
    SACSettings,
    TrainerSettings,
    check_demo_paths,
    load_run_options,
    missing_demo_paths,
    parse_run_options,
    to_resolved_dict,
    to_resolved_yaml,
)
from tests.conftest import CURRENT_CONFIG_NAMES, FIXTURES, REPO
from unity_gym.players import get_player

CONFIGS = FIXTURES / "configs"
SOCCER = FIXTURES / "run_artifacts" / "SoccerTwos" / "configuration.yaml"
# Listed, not globbed: a missing fixture file fails its test instead of vanishing from the list.
CURRENT_CONFIGS = [CONFIGS / name for name in CURRENT_CONFIG_NAMES]


def _write(tmp_path: Path, text: str, name: str = "config.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _key_layout(value: Any) -> Any:
    """The nested key structure of a mapping, in order, without the values."""
    if isinstance(value, dict):
        return [(key, _key_layout(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_key_layout(item) for item in value]
    return None


def _error(text: str, tmp_path: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        load_run_options(_write(tmp_path, text))
    return str(caught.value)


# -- the release 21 example configurations ------------------------------------------------------


def test_fixture_configs_are_present() -> None:
    assert len(CURRENT_CONFIGS) == 20
    assert all(path.is_file() for path in CURRENT_CONFIGS), [
        str(path) for path in CURRENT_CONFIGS if not path.is_file()
    ]
    on_disk = sorted(
        path for kind in ("ppo", "sac", "imitation") for path in (CONFIGS / kind).glob("*.yaml")
    )
    assert on_disk == sorted(CURRENT_CONFIGS)


@pytest.mark.parametrize("path", CURRENT_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_config_loads_resolves_and_reloads(
    path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="unity_sb3"):
        options = load_run_options(path)
    assert caplog.records == []  # current format: nothing to convert
    raw = yaml.safe_load(path.read_text())
    assert list(options.behaviors) == list(raw["behaviors"])
    resolved = to_resolved_dict(options)
    # Same layout as mlagents-learn's own configuration.yaml...
    soccer = yaml.safe_load(SOCCER.read_text())
    assert list(resolved) == list(soccer)
    soccer_behavior = soccer["behaviors"]["SoccerTwos"]
    for behavior in resolved["behaviors"].values():
        assert list(behavior) == list(soccer_behavior)
        assert list(behavior["network_settings"]) == list(soccer_behavior["network_settings"])
    # ...and loading the resolved form again changes nothing.
    assert to_resolved_dict(parse_run_options(resolved)) == resolved
    assert to_resolved_dict(parse_run_options(yaml.safe_load(to_resolved_yaml(options)))) == (
        resolved
    )


def test_fixture_values_arrive_where_mlagents_puts_them() -> None:
    ball = load_run_options(CONFIGS / "sac" / "3DBall.yaml").behaviors["3DBall"]
    assert isinstance(ball.hyperparameters, SACSettings)
    assert (ball.hyperparameters.batch_size, ball.hyperparameters.buffer_size) == (64, 200000)
    assert ball.hyperparameters.steps_per_update == 10.0
    assert ball.hyperparameters.init_entcoef == 0.5
    assert ball.network_settings.normalize is True
    assert ball.max_steps == 200000

    pyramids = load_run_options(CONFIGS / "imitation" / "Pyramids.yaml").behaviors["Pyramids"]
    assert pyramids.max_steps == 10_000_000  # "1.0e7" is text to PyYAML
    curiosity = pyramids.reward_signals.curiosity
    assert curiosity is not None and curiosity.network_settings.hidden_units == 256
    assert isinstance(pyramids.reward_signals.gail, GAILSettings)
    assert pyramids.behavioral_cloning is not None
    assert pyramids.behavioral_cloning.steps == 150000
    assert list(pyramids.reward_signals.configured()) == ["extrinsic", "gail", "curiosity"]

    rnd = load_run_options(CONFIGS / "ppo" / "PyramidsRND.yaml").behaviors["Pyramids"]
    assert isinstance(rnd.reward_signals.rnd, RNDSettings)
    assert rnd.reward_signals.rnd.network_settings.num_layers == 3
    assert rnd.reward_signals.rnd.learning_rate == 1e-4

    hallway = load_run_options(CONFIGS / "ppo" / "Hallway.yaml").behaviors["Hallway"]
    assert hallway.network_settings.memory is not None
    assert hallway.network_settings.memory.memory_size == 128


def test_curriculum_and_samplers_resolve_to_mlagents_lesson_form() -> None:
    options = load_run_options(CONFIGS / "ppo" / "WallJump_curriculum.yaml")
    assert options.environment_parameters is not None
    big = options.environment_parameters["big_wall_height"].curriculum
    assert [lesson.name for lesson in big] == ["Lesson0", "Lesson1", "Lesson2", "Lesson3"]
    criteria = [lesson.completion_criteria for lesson in big]
    assert [c.threshold for c in criteria if c is not None] == [0.1, 0.3, 0.5]
    assert big[-1].completion_criteria is None
    resolved = to_resolved_dict(options)["environment_parameters"]["big_wall_height"]
    assert resolved["curriculum"][0] == {
        "value": {
            "sampler_type": "uniform",
            "sampler_parameters": {"seed": -1, "min_value": 0.0, "max_value": 4.0},
        },
        "name": "Lesson0",
        "completion_criteria": {
            "behavior": "BigWallJump",
            "measure": "progress",
            "min_lesson_length": 100,
            "signal_smoothing": True,
            "threshold": 0.1,
            "require_reset": False,
        },
    }
    assert resolved["curriculum"][3]["value"] == {
        "sampler_type": "constant",
        "sampler_parameters": {"seed": -1, "value": 8.0},
    }

    randomized = load_run_options(CONFIGS / "ppo" / "3DBall_randomize.yaml")
    assert randomized.environment_parameters is not None
    mass = randomized.environment_parameters["mass"].curriculum
    assert len(mass) == 1 and mass[0].name == "mass" and mass[0].completion_criteria is None
    assert to_resolved_dict(randomized)["environment_parameters"]["mass"]["curriculum"][0][
        "value"
    ] == {
        "sampler_type": "uniform",
        "sampler_parameters": {"seed": -1, "min_value": 0.5, "max_value": 10.0},
    }


def test_shipped_3dball_randomize_is_3dball_with_mlagents_parameters() -> None:
    """configs/3DBall_randomize.yaml: our 3DBall.yaml plus ML-Agents' environment_parameters
    (mass ~ U(0.5, 10), scale ~ U(0.75, 3)), which the built-in 3DBall reads."""
    ours = to_resolved_dict(load_run_options(REPO / "configs" / "3DBall.yaml"))
    randomized = to_resolved_dict(load_run_options(REPO / "configs" / "3DBall_randomize.yaml"))
    mlagents = to_resolved_dict(load_run_options(CONFIGS / "ppo" / "3DBall_randomize.yaml"))
    assert randomized["behaviors"] == ours["behaviors"]
    assert randomized["env_settings"] == ours["env_settings"]
    assert randomized["environment_parameters"] == mlagents["environment_parameters"]
    lessons = {
        key: [lesson["value"] for lesson in parameter["curriculum"]]
        for key, parameter in randomized["environment_parameters"].items()
    }
    assert lessons == {
        "mass": [
            {
                "sampler_type": "uniform",
                "sampler_parameters": {"seed": -1, "min_value": 0.5, "max_value": 10.0},
            }
        ],
        "scale": [
            {
                "sampler_type": "uniform",
                "sampler_parameters": {"seed": -1, "min_value": 0.75, "max_value": 3.0},
            }
        ],
    }
    # Both are parameters the built-in 3DBall reads.
    assert set(lessons) <= {p.name for p in get_player("3DBall").environment_parameters}


# -- mlagents-learn's own resolved configuration.yaml ----------------------------------------------


def test_soccer_twos_configuration_round_trips_apart_from_poca(tmp_path: Path) -> None:
    written = yaml.safe_load(SOCCER.read_text())
    with pytest.raises(ConfigError) as caught:
        load_run_options(SOCCER)
    assert str(caught.value) == (
        f"{SOCCER}: the training configuration has a problem:\n"
        "  - behaviors.SoccerTwos.trainer_type: trainer_type 'poca' is not supported; unity-sb3 "
        "trains ppo and sac\n"
        "Fix it and run again; docs/config.md lists every key with its default."
    )

    as_ppo = yaml.safe_load(SOCCER.read_text())
    as_ppo["behaviors"]["SoccerTwos"]["trainer_type"] = "ppo"
    resolved = to_resolved_dict(parse_run_options(as_ppo, source=SOCCER))
    # PPO's hyperparameters have shared_critic, which POCA's lack; everything else matches.
    hyper = resolved["behaviors"]["SoccerTwos"]["hyperparameters"]
    assert hyper.pop("shared_critic") is False
    assert _key_layout(resolved) == _key_layout(written)
    resolved["behaviors"]["SoccerTwos"]["trainer_type"] = "poca"
    assert resolved == written


# -- defaults ----------------------------------------------------------------------------------


def test_trainer_defaults_match_mlagents() -> None:
    network = {
        "normalize": False,
        "hidden_units": 128,
        "num_layers": 2,
        "vis_encode_type": "simple",
        "memory": None,
        "goal_conditioning_type": "hyper",
        "deterministic": False,
    }
    assert TrainerSettings().model_dump(mode="json") == {
        "trainer_type": "ppo",
        "hyperparameters": {
            "batch_size": 1024,
            "buffer_size": 10240,
            "learning_rate": 3.0e-4,
            "beta": 5.0e-3,
            "epsilon": 0.2,
            "lambd": 0.95,
            "num_epoch": 3,
            "shared_critic": False,
            "learning_rate_schedule": "linear",
            "beta_schedule": "linear",
            "epsilon_schedule": "linear",
        },
        "checkpoint_interval": 500000,
        "network_settings": network,
        "reward_signals": {
            "extrinsic": {"gamma": 0.99, "strength": 1.0, "network_settings": network}
        },
        "init_path": None,
        "keep_checkpoints": 5,
        "even_checkpoints": False,
        "max_steps": 500000,
        "time_horizon": 64,
        "summary_freq": 50000,
        "threaded": False,
        "self_play": None,
        "behavioral_cloning": None,
    }
    assert TrainerSettings.model_validate({"trainer_type": "sac"}).model_dump(mode="json")[
        "hyperparameters"
    ] == {
        "learning_rate": 3.0e-4,
        "learning_rate_schedule": "constant",
        "batch_size": 128,
        "buffer_size": 50000,
        "buffer_init_steps": 0,
        "tau": 0.005,
        "steps_per_update": 1.0,
        "save_replay_buffer": False,
        "init_entcoef": 1.0,
        "reward_signal_steps_per_update": 1.0,
    }


def test_run_defaults_match_mlagents() -> None:
    resolved = to_resolved_dict(load_run_options(None))
    assert resolved == {
        "default_settings": None,
        "behaviors": {},
        "env_settings": {
            "env_path": None,
            "env_args": None,
            "base_port": 5005,
            "num_envs": 1,
            "num_areas": 1,
            "timeout_wait": 60,
            "seed": -1,
            "max_lifetime_restarts": 10,
            "restarts_rate_limit_n": 1,
            "restarts_rate_limit_period_s": 60,
        },
        "engine_settings": {
            "width": 84,
            "height": 84,
            "quality_level": 5,
            "time_scale": 20,
            "target_frame_rate": -1,
            "capture_frame_rate": 60,
            "no_graphics": False,
            "no_graphics_monitor": False,
        },
        "environment_parameters": None,
        "checkpoint_settings": {
            "run_id": "ppo",
            "initialize_from": None,
            "load_model": False,
            "resume": False,
            "force": False,
            "train_model": False,
            "inference": False,
            "results_dir": "results",
        },
        "torch_settings": {"device": None},
        "debug": False,
    }
    checkpoint = load_run_options(None).checkpoint_settings
    assert checkpoint.write_path == Path("results/ppo")
    assert checkpoint.run_logs_dir == Path("results/ppo/run_logs")
    assert checkpoint.maybe_init_path is None


def test_defaults_that_follow_other_keys() -> None:
    ppo = PPOSettings.model_validate({"learning_rate_schedule": "constant"})
    assert (ppo.beta_schedule, ppo.epsilon_schedule) == ("constant", "constant")
    ppo = PPOSettings.model_validate(
        {"learning_rate_schedule": "constant", "beta_schedule": "linear"}
    )
    assert (ppo.beta_schedule, ppo.epsilon_schedule) == ("linear", "constant")
    sac = SACSettings.model_validate({"steps_per_update": 10})
    assert sac.reward_signal_steps_per_update == 10.0
    behavior = TrainerSettings.model_validate(
        {
            "self_play": {"save_steps": 1000},
            "reward_signals": {"curiosity": {"encoding_size": 256}},
            "max_steps": "5.0e5",
            "keep_checkpoints": 4,
            "even_checkpoints": True,
        }
    )
    assert behavior.self_play is not None and behavior.self_play.team_change == 5000
    curiosity = behavior.reward_signals.curiosity
    assert curiosity is not None and curiosity.network_settings.hidden_units == 256
    assert behavior.reward_signals.extrinsic is None  # reward_signals given: only those
    assert behavior.checkpoint_interval == 125000  # max_steps / keep_checkpoints
    explicit_network = TrainerSettings.model_validate(
        {"reward_signals": {"rnd": {"encoding_size": 256, "network_settings": {}}}}
    )
    rnd = explicit_network.reward_signals.rnd
    assert rnd is not None and rnd.network_settings.hidden_units == 128


# -- default_settings ----------------------------------------------------------------------------

MERGE_CONFIG = """
default_settings:
  trainer_type: ppo
  hyperparameters: {batch_size: 256, learning_rate: 0.001, learning_rate_schedule: constant}
  network_settings: {hidden_units: 64, num_layers: 3}
  reward_signals:
    extrinsic: {gamma: 0.9}
    curiosity: {strength: 0.05}
  max_steps: 1000
behaviors:
  A:
    hyperparameters: {batch_size: 32}
    network_settings: {normalize: true}
    reward_signals:
      extrinsic: {strength: 0.5}
  B:
    trainer_type: sac
    hyperparameters: {tau: 0.01}
  C:
"""


def test_default_settings_are_merged_under_each_behavior(tmp_path: Path) -> None:
    options = load_run_options(_write(tmp_path, MERGE_CONFIG))
    a = options.behaviors["A"]
    assert isinstance(a.hyperparameters, PPOSettings)
    # The behavior's keys win, the rest comes from default_settings, recursively.
    assert a.hyperparameters.batch_size == 32
    assert a.hyperparameters.learning_rate == 0.001
    assert a.hyperparameters.beta_schedule == "constant"
    assert (a.network_settings.normalize, a.network_settings.hidden_units) == (True, 64)
    assert a.network_settings.num_layers == 3
    assert a.max_steps == 1000
    extrinsic = a.reward_signals.extrinsic
    assert extrinsic is not None and (extrinsic.gamma, extrinsic.strength) == (0.9, 0.5)
    curiosity = a.reward_signals.curiosity
    assert curiosity is not None and curiosity.strength == 0.05  # added, as ML-Agents does
    # Another trainer type does not inherit PPO hyperparameters.
    b = options.behaviors["B"]
    assert isinstance(b.hyperparameters, SACSettings)
    assert (b.hyperparameters.tau, b.hyperparameters.batch_size) == (0.01, 128)
    assert b.network_settings.hidden_units == 64
    # An empty entry is the default settings; so is an unlisted behavior.
    c = options.behaviors["C"]
    assert options.default_settings is not None
    assert c == options.default_settings
    unlisted = options.settings_for("Unlisted?team=1")
    assert unlisted == options.default_settings and unlisted is not options.default_settings
    assert options.settings_for("A?team=0") is a
    # Where a behavior's setting is written, for messages about it.
    assert options.settings_key("A?team=0", "init_path") == "behaviors.A.init_path"
    assert options.settings_key("Unlisted", "init_path") == "default_settings.init_path"


def test_unlisted_behavior_without_default_settings(tmp_path: Path) -> None:
    path = _write(tmp_path, "behaviors:\n  A: {}\n")
    with pytest.raises(ConfigError) as caught:
        load_run_options(path).settings_for("B")
    assert str(caught.value) == (
        f"Behavior 'B' is not listed in {path}. Add an entry for it under behaviors:, or a "
        "default_settings: section for behaviors that are not listed."
    )
    assert load_run_options(None).settings_for("B") == TrainerSettings()


# -- messages ----------------------------------------------------------------------------------


def test_unknown_key_names_file_path_and_closest_key(tmp_path: Path) -> None:
    message = _error(
        "behaviors:\n  3DBall:\n    trainer_type: ppo\n    hyperparameters:\n      batchsize: 64\n",
        tmp_path,
    )
    assert message == (
        f"{tmp_path / 'config.yaml'}: the training configuration has a problem:\n"
        "  - behaviors.3DBall.hyperparameters.batchsize: unknown key; did you mean "
        "'batch_size'?\n"
        "Fix it and run again; docs/config.md lists every key with its default."
    )


def test_unknown_key_hints(tmp_path: Path) -> None:
    message = _error(
        "behavior: {}\nbehaviors:\n  A:\n    trainer_type: sac\n    tau: 0.1\n"
        "env_settings: {color: red}\n",
        tmp_path,
    )
    assert "  - behavior: unknown key; did you mean 'behaviors'?\n" in message
    assert (
        "  - behaviors.A.tau: unknown key; it belongs in the hyperparameters section "
        "(hyperparameters.tau)\n"
    ) in message
    assert (
        "  - env_settings.color: unknown key; valid keys here: env_path, env_args, base_port, "
        "num_envs, num_areas, timeout_wait, seed, max_lifetime_restarts, restarts_rate_limit_n, "
        "restarts_rate_limit_period_s, ray_address, ray_cpus_per_player, ray_resources, "
        "ray_players_per_host\n"
    ) in message
    assert "has 3 problems" in message


def test_wrong_types_name_path_value_and_expected_type(tmp_path: Path) -> None:
    message = _error(
        "behaviors:\n"
        "  A:\n"
        "    hyperparameters: {learning_rate: fast, num_epoch: 0, batch_size: 2.5}\n"
        "    network_settings: {vis_encode_type: simpel, normalize: maybe}\n"
        "    max_steps: true\n"
        "    reward_signals: {gail: {strength: 0.1}}\n",
        tmp_path,
    )
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert lines == [
        "  - behaviors.A.hyperparameters.batch_size: got 2.5 (a number), expected an integer",
        "  - behaviors.A.hyperparameters.learning_rate: got 'fast' (text), expected a number",
        "  - behaviors.A.hyperparameters.num_epoch: got 0 (an integer), expected a value greater "
        "than 0",
        "  - behaviors.A.network_settings.normalize: got 'maybe' (text), expected true or false",
        "  - behaviors.A.network_settings.vis_encode_type: got 'simpel' (text), expected one of "
        "'fully_connected', 'match3', 'simple', 'nature_cnn' or 'resnet'; did you mean 'simple'?",
        "  - behaviors.A.reward_signals.gail.demo_path: required key is missing",
        "  - behaviors.A.max_steps: got true (a boolean), expected an integer",
    ]


def test_unsupported_trainer_type_hides_its_hyperparameter_errors(tmp_path: Path) -> None:
    message = _error(
        "behaviors:\n  A:\n    trainer_type: poca\n    hyperparameters: {tau: 1, beta: x}\n",
        tmp_path,
    )
    assert message.splitlines()[1:] == [
        "  - behaviors.A.trainer_type: trainer_type 'poca' is not supported; unity-sb3 trains "
        "ppo and sac",
        "Fix it and run again; docs/config.md lists every key with its default.",
    ]


def test_environment_parameter_messages_use_the_written_paths(tmp_path: Path) -> None:
    message = _error(
        "environment_parameters:\n"
        "  mass: {sampler_type: unifrom, sampler_parameters: {}}\n"
        "  scale: {sampler_type: uniform, sampler_parameters: {min_valu: 1}}\n"
        "  length: {sampler_type: uniform, sampler_parameters: {min_value: 3, max_value: 1}}\n"
        "  wall:\n"
        "    curriculum:\n"
        "      - {name: first, value: 1}\n"
        "      - {name: last, value: [2]}\n"
        "  height:\n"
        "    curriculum:\n"
        "      - name: only\n"
        "        value: 1\n"
        "        completion_criteria: {behavior: A, measure: progress, threshold: 2}\n",
        tmp_path,
    )
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert lines == [
        "  - environment_parameters.mass.sampler_type: got 'unifrom', expected one of uniform, "
        "gaussian, multirangeuniform, constant; did you mean 'uniform'?",
        "  - environment_parameters.scale.sampler_parameters.min_valu: unknown key; did you mean "
        "'min_value'?",
        "  - environment_parameters.length.sampler_parameters: min_value (3.0) is greater than "
        "max_value (1.0)",
        "  - environment_parameters.wall.curriculum.1.value: got [2] (a list), expected a number "
        "or a sampler (sampler_type: uniform, gaussian, multirangeuniform, constant, with "
        "sampler_parameters)",
        "  - environment_parameters.height.curriculum.0.completion_criteria: threshold must be "
        "between 0 and 1 when measure is progress (got 2.0)",
    ]


def test_a_value_with_a_newline_key_is_shown_on_one_line() -> None:
    """Found by the config fuzzer: YAML's flow style spreads a key holding a newline over lines,
    which split the message into paragraphs; such values are shown as JSON."""
    with pytest.raises(ConfigError) as caught:
        parse_run_options({"environment_parameters": {"gravity": [{"\n": None}]}})
    message = str(caught.value)
    assert "\n\n" not in message
    assert 'environment_parameters.gravity: got [{"\\n": null}] (a list)' in message


def test_curriculum_rules(tmp_path: Path) -> None:
    message = _error(
        "environment_parameters:\n  wall:\n    curriculum:\n"
        "      - {name: a, value: 1}\n      - {name: b, value: 2}\n",
        tmp_path,
    )
    assert (
        "  - environment_parameters.wall: lesson 0 ('a') is not the last one, so it needs "
        "completion_criteria\n"
    ) in message
    options = parse_run_options(
        {
            "environment_parameters": {
                "gravity": {
                    "sampler_type": "multirange_uniform",  # ML-Agents' documented spelling
                    "sampler_parameters": {"intervals": [[7, 10], [15, 20]]},
                },
                "level": {
                    "curriculum": [
                        {
                            "name": "a",
                            "value": 0,
                            "completion_criteria": {
                                "behavior": "A",
                                "measure": "Elo",
                                "threshold": 1300,
                            },
                        },
                        {"name": "b", "value": "1e-3"},
                    ]
                },
            }
        }
    )
    resolved = to_resolved_dict(options)["environment_parameters"]
    gravity = resolved["gravity"]["curriculum"][0]["value"]
    assert gravity["sampler_type"] == "multirangeuniform"
    assert gravity["sampler_parameters"]["intervals"] == [[7.0, 10.0], [15.0, 20.0]]
    assert resolved["level"]["curriculum"][1]["value"]["sampler_parameters"]["value"] == 0.001


def test_other_checks(tmp_path: Path) -> None:
    message = _error(
        "behaviors:\n"
        "  A:\n"
        "    hyperparameters: {batch_size: 32}\n"
        "    network_settings: {memory: {sequence_length: 64, memory_size: 127}}\n"
        "  B:\n"
        "    hyperparameters: {batch_size: 32}\n"
        "    network_settings: {memory: {sequence_length: 64}}\n"
        "env_settings: {num_envs: 4}\n",
        tmp_path,
    )
    lines = [line for line in message.splitlines() if line.startswith("  - ")]
    assert lines == [
        "  - behaviors.A.network_settings.memory.memory_size: memory_size must be divisible by 2 "
        "(got 127)",
        "  - behaviors.B: network_settings.memory.sequence_length (64) must not exceed "
        "hyperparameters.batch_size (32)",
        "  - env_settings.num_envs: num_envs is 4 but no env_path (--env) is set; the Editor is a "
        "single environment, so give a player build or set num_envs to 1",
    ]


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    message = _error("behaviors:\n  3DBall:\n    trainer_type: ppo\n   max_steps: 10\n", tmp_path)
    assert message == (
        f"Training configuration file {tmp_path / 'config.yaml'} is not valid YAML at line 4, "
        "column 4: expected <block end>, but found '<block mapping start>'. Fix the syntax "
        "there (indentation and a missing ':' after a key are the usual causes)."
    )


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_run_options(missing)
    assert str(caught.value) == (
        f"Training configuration file {missing} does not exist (looked for {missing.absolute()}). "
        "Check the path; a relative path is taken from the current directory."
    )
    assert _error("# nothing\n", tmp_path).endswith("is empty; it needs at least one section.")
    assert _error("- a\n- b\n", tmp_path).endswith(
        "must be a mapping of sections (key: value lines) at the top level, but it holds a list."
    )


def test_many_problems_are_listed_in_one_message(tmp_path: Path) -> None:
    keys = "".join(f"    key{index}: 1\n" for index in range(25))
    message = _error(f"behaviors:\n  A:\n{keys}", tmp_path)
    assert "has 25 problems" in message
    assert "  - ... and 5 more\n" in message


# -- demonstrations ------------------------------------------------------------------------------


def test_demo_paths_are_checked_only_on_request(tmp_path: Path) -> None:
    options = load_run_options(CONFIGS / "imitation" / "PushBlock.yaml")  # loads regardless
    demo = "Project/Assets/ML-Agents/Examples/PushBlock/Demos/ExpertPushBlock.demo"
    tried = tmp_path / demo
    assert missing_demo_paths(options, tmp_path) == [
        f"behaviors.PushBlock.reward_signals.gail.demo_path: {demo} (looked for {tried})",
        f"behaviors.PushBlock.behavioral_cloning.demo_path: {demo} (looked for {tried})",
    ]
    with pytest.raises(ConfigError) as caught:
        check_demo_paths(options, tmp_path)
    assert str(caught.value).startswith(
        f"Demonstration file(s) not found in {CONFIGS / 'imitation' / 'PushBlock.yaml'}:\n"
        f"  - behaviors.PushBlock.reward_signals.gail.demo_path: {demo} (looked for {tried})\n"
    )
    assert str(caught.value).endswith(
        f"Relative demo_path values are taken from the current directory ({tmp_path}), as "
        "mlagents-learn does: run from the folder they are relative to, or give absolute paths."
    )
    tried.parent.mkdir(parents=True)
    tried.write_bytes(b"")
    assert missing_demo_paths(options, tmp_path) == []
    check_demo_paths(options, tmp_path)


def test_demo_paths_relative_to_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    demos = FIXTURES / "demos"
    options = RunOptions.model_validate(
        {
            "default_settings": {"behavioral_cloning": {"demo_path": "test_demo_dir"}},
            "behaviors": {
                "A": {"reward_signals": {"gail": {"demo_path": str(demos / "ExpertBasic.demo")}}}
            },
        }
    )
    monkeypatch.chdir(demos)
    assert missing_demo_paths(options) == []
    monkeypatch.chdir(tmp_path)
    assert missing_demo_paths(options) == [
        f"default_settings.behavioral_cloning.demo_path: test_demo_dir (looked for "
        f"{tmp_path / 'test_demo_dir'})",
        f"behaviors.A.behavioral_cloning.demo_path: test_demo_dir (looked for "
        f"{tmp_path / 'test_demo_dir'})",
    ]


def test_nan_and_infinity_are_refused_where_they_would_reach_trainer_or_players(
    tmp_path: Path,
) -> None:
    message = _error(
        "behaviors:\n"
        "  A:\n"
        "    hyperparameters: {learning_rate: .nan}\n"
        "engine_settings: {time_scale: .inf}\n"
        "environment_parameters:\n"
        "  wall:\n"
        "    curriculum:\n"
        "      - {name: a, value: 1, completion_criteria: {behavior: A, threshold: .nan}}\n"
        "      - {name: b, value: 2}\n",
        tmp_path,
    )
    assert "  - behaviors.A.hyperparameters.learning_rate: Input should be a finite number" in (
        message
    )
    assert "  - engine_settings.time_scale: Input should be a finite number (got inf" in message
    assert (
        "  - environment_parameters.wall.curriculum.0.completion_criteria.threshold: Input "
        "should be a finite number (got nan"
    ) in message
