"""Curiosity and RND in ``unity-sb3 learn``: translation, TensorBoard names, checkpoints, errors."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("stable_baselines3")

import torch
import yaml

from cli.config_errors import ConfigError
from cli.main import main
from cli.sb3_translation import TranslationError, translate_behavior
from cli.training_config import parse_run_options
from sb3_ext.reward_signals import (
    CuriositySettings,
    RewardSignalMaskedDictReplayBuffer,
    RNDSettings,
)
from tests.conftest import FIXTURES
from tests.test_reward_signals_sb3 import SIGNAL_STATS
from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players.pyramids import PyramidsTask

PPO_FIXTURES = FIXTURES / "configs/ppo"

# Tiny networks; Pyramids episodes last 1000 decisions, so 1100 steps end one per area.
PYRAMIDS: dict[str, Any] = {
    "behaviors": {
        "Pyramids": {
            "trainer_type": "ppo",
            "hyperparameters": {"batch_size": 64, "buffer_size": 256, "num_epoch": 2},
            "network_settings": {"hidden_units": 16, "num_layers": 1},
            "reward_signals": {
                "extrinsic": {"gamma": 0.99, "strength": 1.0},
                "curiosity": {"strength": 0.02, "network_settings": {"hidden_units": 16}},
                "rnd": {
                    "strength": 0.01,
                    "learning_rate": 0.0001,
                    "network_settings": {"hidden_units": 16, "num_layers": 3},
                },
            },
            "max_steps": 1100,
            "summary_freq": 550,
            "checkpoint_interval": 550,
        }
    },
    "env_settings": {"env_path": "builtin:Pyramids", "seed": 3},
}


def _plan(config: dict[str, Any] | Path, spec: BehaviorSpec = PyramidsTask.behavior_spec):
    data = yaml.safe_load(config.read_text()) if isinstance(config, Path) else config
    options = parse_run_options(data)
    return translate_behavior("Pyramids", options.settings_for("Pyramids"), spec, 8)


def _with(**changes: Any) -> dict[str, Any]:
    """PYRAMIDS with behavior keys replaced (dotted paths like ``reward_signals.rnd``)."""
    config = copy.deepcopy(PYRAMIDS)
    for dotted, value in changes.items():
        target = config["behaviors"]["Pyramids"]
        *parents, last = dotted.split("__")
        for key in parents:
            target = target[key]
        if value is None:
            del target[last]
        else:
            target[last] = value
    return config


def _learn(tmp_path: Path, config: dict[str, Any], *extra: str, run_id: str = "run") -> int:
    path = tmp_path / f"{run_id}.yaml"
    path.write_text(yaml.safe_dump(config))
    return main(
        ["learn", str(path), f"--run-id={run_id}", f"--results-dir={tmp_path / 'results'}", *extra]
    )


def _scalar_tags(folder: Path) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder))
    events.Reload()
    return set(events.Tags()["scalars"])


def _signal_state(path: Path) -> dict[str, Any]:
    return torch.load(path, weights_only=True)


def _assert_same_weights(a: dict[str, Any], b: dict[str, Any]) -> None:
    assert set(a) == set(b)
    for signal in a:
        if signal == "value_heads":
            for key, tensor in a[signal]["network"].items():
                torch.testing.assert_close(tensor, b[signal]["network"][key])
            continue
        for module, weights in a[signal]["modules"].items():
            for key, tensor in weights.items():
                torch.testing.assert_close(tensor, b[signal]["modules"][module][key])


# -- translation ---------------------------------------------------------------------------


def test_mlagents_pyramids_configs_translate_each_signal() -> None:
    plan = _plan(PPO_FIXTURES / "Pyramids.yaml")
    assert list(plan.reward_signals) == ["curiosity"]
    curiosity = plan.reward_signals["curiosity"]
    assert isinstance(curiosity, CuriositySettings)
    assert (curiosity.strength, curiosity.gamma, curiosity.learning_rate) == (0.02, 0.99, 3e-4)
    assert curiosity.network_settings.hidden_units == 256
    assert curiosity.network_settings.num_layers == 2  # ML-Agents' default
    rnd = _plan(PPO_FIXTURES / "PyramidsRND.yaml").reward_signals["rnd"]
    assert isinstance(rnd, RNDSettings)
    assert (rnd.strength, rnd.learning_rate) == (0.01, 1e-4)
    assert (rnd.network_settings.hidden_units, rnd.network_settings.num_layers) == (64, 3)
    described = plan.describe()["reward_signals"]["curiosity"]
    assert described["class"] == "sb3_ext.reward_signals.CuriositySignal"
    assert described["network_settings"]["hidden_units"] == 256
    assert not any("not available yet" in note for note in plan.notes)
    # PPO: the signal gets its own value head on the behavior's network_settings, as in
    # ML-Agents, so nothing about value heads needs a note.
    heads = plan.describe()["reward_signal_value_heads"]
    assert heads["signals"] == ["curiosity"]
    assert heads["network_settings"]["hidden_units"] == 512
    assert not any("value head" in note for note in plan.notes)


def test_signal_gamma_is_honoured_by_ppo_named_for_sac_and_encoding_size_sizes_the_net() -> None:
    signals = {"gamma": 0.9, "strength": 0.1, "encoding_size": 48}
    plan = _plan(_with(reward_signals__curiosity=signals, reward_signals__rnd=None))
    assert plan.reward_signals["curiosity"].network_settings.hidden_units == 48
    # PPO honours the signal's gamma in its value head.
    assert plan.reward_signals["curiosity"].gamma == 0.9
    assert not any("gamma 0.9" in note for note in plan.notes)
    # SAC's one Q value discounts the summed reward with one gamma: named in notes.
    sac = _plan(
        _with(
            trainer_type="sac",
            hyperparameters={"batch_size": 32, "buffer_size": 1000},
            reward_signals__curiosity=signals,
            reward_signals__rnd=None,
        )
    )
    assert any(
        n.startswith("reward_signals.curiosity: gamma 0.9 differs from the algorithm's gamma 0.99")
        for n in sac.notes
    )
    assert any(n.startswith("reward_signals.curiosity: ML-Agents bootstraps") for n in sac.notes)
    assert sac.describe()["reward_signal_value_heads"] is None


def test_sac_gets_a_reward_signal_replay_buffer_and_its_update_schedule() -> None:
    config = _with(
        trainer_type="sac",
        hyperparameters={
            "batch_size": 32,
            "buffer_size": 1000,
            "reward_signal_steps_per_update": 4,
        },
    )
    plan = _plan(config)
    assert plan.algorithm == "DiscreteSAC"
    assert plan.kwargs["replay_buffer_class"] is RewardSignalMaskedDictReplayBuffer
    assert plan.reward_signal_steps_per_update == 4.0
    assert plan.describe()["reward_signals"]["rnd"]["steps_per_update"] == 4.0
    without = _plan({**config, "behaviors": {"Pyramids": {"trainer_type": "sac"}}})
    assert "replay_buffer_class" not in without.kwargs and not without.reward_signals


# -- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signals", "named"),
    [
        ({"novelty": {"strength": 0.1}}, "novelty"),
        ({"curiosity": {"strength": -0.5}}, "-0.5"),
        ({"rnd": {"learning_rate": -1e-4}}, "-0.0001"),
    ],
)
def test_bad_reward_signals_are_explained_by_key_and_value(
    signals: dict[str, Any], named: str
) -> None:
    config = _with(reward_signals={"extrinsic": {}, **signals})
    with pytest.raises(ConfigError) as error:
        parse_run_options(config)
    message = str(error.value)
    assert "reward_signals" in message and named in message


def test_image_too_small_for_a_signals_encoder_is_explained() -> None:
    spec = BehaviorSpec(
        observation_specs=[
            ObservationSpec(
                shape=(3, 20, 20),
                dimension_property=(DimensionProperty.NONE,) * 3,
                observation_type=ObservationType.DEFAULT,
                name="Camera",
            )
        ],
        action_spec=ActionSpec.create_discrete((3,)),
    )
    config = _with(
        reward_signals__curiosity={"network_settings": {"vis_encode_type": "nature_cnn"}}
    )
    with pytest.raises(TranslationError) as error:
        _plan(config, spec)
    message = str(error.value)
    assert "reward_signals.curiosity.network_settings.vis_encode_type" in message
    assert "nature_cnn" in message and "20" in message


# -- end to end ----------------------------------------------------------------------------


def test_ppo_with_curiosity_and_rnd_logs_mlagents_names_and_resume_restores_models(
    tmp_path: Path, capsys
) -> None:
    assert _learn(tmp_path, PYRAMIDS) == 0
    folder = tmp_path / "results/run/Pyramids"
    tags = _scalar_tags(folder)
    value_estimates = {
        "Policy/Extrinsic Value Estimate",
        "Policy/Curiosity Value Estimate",
        "Policy/Rnd Value Estimate",
    }
    assert SIGNAL_STATS | value_estimates <= tags
    pointer = yaml.safe_load((folder / "checkpoint.json").read_text())
    saved = _signal_state(folder / pointer["reward_signals"])
    assert set(saved) == {"curiosity", "rnd", "value_heads"}
    assert saved["value_heads"]["names"] == ["Curiosity", "RND"]
    assert saved["value_heads"]["optimizer"]["state"], "the heads' optimizer is checkpointed"
    assert saved["curiosity"]["has_updated_once"]
    assert saved["curiosity"]["optimizer"]["state"], "optimizer state is checkpointed"
    # The exported model stays the policy alone.
    import onnx

    graph = onnx.load(str(tmp_path / "results/run/Pyramids.onnx")).graph
    assert {o.name for o in graph.output} >= {"discrete_actions", "version_number"}
    capsys.readouterr()
    # Resume at max_steps: nothing trains, the final checkpoint rewrites the restored models.
    assert _learn(tmp_path, PYRAMIDS, "--resume") == 0
    assert "Restored the reward models of Pyramids (curiosity, rnd)." in capsys.readouterr().out
    _assert_same_weights(saved, _signal_state(folder / pointer["reward_signals"]))


def test_initialize_from_restores_reward_models_that_fit_and_explains_those_that_do_not(
    tmp_path: Path, capsys
) -> None:
    config = _with(max_steps=300, summary_freq=300, checkpoint_interval=300)
    assert _learn(tmp_path, config) == 0
    capsys.readouterr()
    config["behaviors"]["Pyramids"]["reward_signals"]["rnd"]["network_settings"] = {
        "hidden_units": 8
    }
    assert _learn(tmp_path, config, "--initialize-from=run", run_id="second") != 0
    err = capsys.readouterr()
    message = err.err + err.out
    assert "reward models" in message and "network_settings" in message
    del config["behaviors"]["Pyramids"]["reward_signals"]["rnd"]
    assert _learn(tmp_path, config, "--initialize-from=run", run_id="third") == 0
    out = capsys.readouterr().out
    assert "Restored the reward models of Pyramids (curiosity)." in out
    # The value heads were saved for curiosity and RND: they start afresh, with a warning.
    assert "signal value heads" in out and "start afresh" in out


def test_discrete_sac_trains_with_curiosity_and_checkpoints_it(tmp_path: Path, capsys) -> None:
    config = _with(
        trainer_type="sac",
        hyperparameters={
            "batch_size": 32,
            "buffer_size": 2000,
            "buffer_init_steps": 100,
            "steps_per_update": 4,
            "reward_signal_steps_per_update": 8,
        },
        reward_signals__rnd=None,
        max_steps=400,
        summary_freq=200,
        checkpoint_interval=200,
    )
    assert _learn(tmp_path, config) == 0
    folder = tmp_path / "results/run/Pyramids"
    tags = _scalar_tags(folder)
    assert {"Losses/Curiosity Forward Loss", "Losses/Curiosity Inverse Loss"} <= tags
    pointer = yaml.safe_load((folder / "checkpoint.json").read_text())
    assert set(_signal_state(folder / pointer["reward_signals"])) == {"curiosity"}
    # Resuming a run that had no signals with curiosity added is explained, not crashed.
    plain = copy.deepcopy(config)
    plain["behaviors"]["Pyramids"]["reward_signals"] = {"extrinsic": {}}
    assert _learn(tmp_path, plain, run_id="plain") == 0
    capsys.readouterr()
    plain["behaviors"]["Pyramids"]["max_steps"] = 600
    plain["behaviors"]["Pyramids"]["reward_signals"] = config["behaviors"]["Pyramids"][
        "reward_signals"
    ]
    assert _learn(tmp_path, plain, "--resume", run_id="plain") != 0
    assert "was trained without them" in capsys.readouterr().err
