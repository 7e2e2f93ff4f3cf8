"""ML-Agents trainer settings -> SB3 plans: every fixture config, and each mapping rule."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("stable_baselines3")
pytest.importorskip("sb3_contrib")

from cli.sb3_translation import TranslationError, translate_behavior
from cli.training_config import RunOptions, load_run_options, parse_run_options
from sb3_ext.networks import ObservationEncoderExtractor
from tests.conftest import CURRENT_CONFIG_NAMES, FIXTURES, LEGACY_TRAINER_CONFIG_NAMES, REPO
from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.players import get_player


def _vector(size: int) -> ObservationSpec:
    return ObservationSpec((size,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "")


def _visual() -> ObservationSpec:
    props = (DimensionProperty.NONE,) * 3
    return ObservationSpec((3, 64, 84), props, ObservationType.DEFAULT, "camera")


CONTINUOUS = BehaviorSpec([_vector(8)], ActionSpec.create_continuous(2))
DISCRETE = BehaviorSpec([_vector(20)], ActionSpec.create_discrete((3,)))
VISUAL_MULTI = BehaviorSpec([_visual(), _vector(4)], ActionSpec.create_discrete((5, 2)))


def _settings(behavior: dict) -> RunOptions:
    return parse_run_options({"behaviors": {"B": behavior}})


def _plan(behavior: dict, spec: BehaviorSpec = CONTINUOUS, agents: int = 12):
    return translate_behavior("B", _settings(behavior).behaviors["B"], spec, agents)


# Every trainer configuration (the legacy --curriculum and --sampler files are not ones).
# Listed, not globbed: a missing fixture file fails its test instead of vanishing from the list.
SIDE_FILES = {"3dball_sampler.yaml", "wall_jump_curriculum.yaml"}
FIXTURE_CONFIG_NAMES = tuple(sorted(CURRENT_CONFIG_NAMES + LEGACY_TRAINER_CONFIG_NAMES))
FIXTURE_CONFIGS = [FIXTURES / "configs" / name for name in FIXTURE_CONFIG_NAMES]


def test_fixture_config_list_matches_the_folder() -> None:
    on_disk = sorted(p for p in (FIXTURES / "configs").glob("*/*.yaml") if p.name not in SIDE_FILES)
    assert on_disk == sorted(FIXTURE_CONFIGS)


@pytest.mark.parametrize("path", FIXTURE_CONFIGS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_fixture_config_translates(path: Path) -> None:
    options = load_run_options(path)
    assert options.behaviors
    for name, settings in options.behaviors.items():
        for spec in (CONTINUOUS, DISCRETE, VISUAL_MULTI):
            plan = translate_behavior(name, settings, spec, 12)
            assert plan.total_timesteps == settings.max_steps
            assert plan.algorithm in ("PPO", "MaskablePPO", "RecurrentPPO", "SAC", "DiscreteSAC")
            # Every plan builds a real SB3 model description without missing arguments.
            assert plan.algorithm_class().__name__ == plan.algorithm
            assert plan.describe()["kwargs"]["gamma"] > 0


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_point_at_builtin_players(path: Path) -> None:
    # <Player>.yaml or <Player>_<variant>.yaml; PyramidsRND.yaml keeps ML-Agents' file name.
    player = path.stem.split("_")[0].removesuffix("RND")
    options = load_run_options(path)
    assert options.env_settings.env_path == f"builtin:{player}"
    behaviors = [b.name.split("?")[0] for b in get_player(player).behaviors]
    assert sorted(options.behaviors) == sorted(set(behaviors))  # Tennis: two teams, one name
    parameters = {p.name for p in get_player(player).environment_parameters}
    assert set(options.environment_parameters or {}) <= parameters  # names the player reads


def test_ppo_rules() -> None:
    plan = _plan(
        {
            "hyperparameters": {
                "batch_size": 64,
                "buffer_size": 12000,
                "learning_rate": 3e-4,
                "beta": 1e-3,
                "epsilon": 0.2,
                "lambd": 0.99,
                "num_epoch": 3,
            },
            "network_settings": {"normalize": True, "hidden_units": 128, "num_layers": 2},
            "reward_signals": {"extrinsic": {"gamma": 0.995, "strength": 2.0}},
            "max_steps": 500000,
        }
    )
    assert plan.algorithm == "PPO" and plan.policy == "MlpPolicy"
    kwargs = plan.kwargs
    assert kwargs["n_steps"] == 1000 and kwargs["batch_size"] == 64 and kwargs["n_epochs"] == 3
    assert kwargs["gamma"] == 0.995 and kwargs["gae_lambda"] == 0.99
    assert kwargs["learning_rate"](1.0) == pytest.approx(3e-4)
    assert kwargs["learning_rate"](0.0) == pytest.approx(1e-10)
    assert kwargs["learning_rate"](0.5) == pytest.approx((3e-4 + 1e-10) / 2)
    assert kwargs["clip_range"](0.0) == pytest.approx(0.1)
    assert kwargs["clip_range_vf"] is kwargs["clip_range"]
    assert kwargs["ent_coef"] == pytest.approx(1e-3)
    assert plan.entropy_schedule is not None and plan.entropy_schedule(0.0) == pytest.approx(1e-5)
    assert kwargs["vf_coef"] == 0.5
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [128, 128], "vf": [128, 128]}
    assert plan.reward_scale == 2.0 and plan.normalize
    assert plan.total_timesteps == 500000


def test_constant_schedules_and_buffer_rounding_are_reported() -> None:
    plan = _plan(
        {
            "hyperparameters": {
                "buffer_size": 1000,
                "batch_size": 5000,
                "learning_rate_schedule": "constant",
            }
        },
        agents=12,
    )
    assert plan.kwargs["learning_rate"](0.0) == pytest.approx(3e-4)
    assert plan.kwargs["n_steps"] == 83
    assert plan.kwargs["batch_size"] == 83 * 12
    notes = "\n".join(plan.notes)
    assert "hyperparameters.buffer_size=1000: with 12 agents each update uses 83 steps" in notes
    assert "hyperparameters.batch_size=5000 exceeds the 996 experiences" in notes


def test_discrete_memory_and_multi_observation_choices() -> None:
    assert _plan({}, DISCRETE).algorithm == "MaskablePPO"
    plan = _plan({"network_settings": {"memory": {"memory_size": 64}}}, DISCRETE)
    assert plan.algorithm == "RecurrentPPO" and plan.policy == "MlpLstmPolicy"
    assert plan.kwargs["policy_kwargs"]["lstm_hidden_size"] == 32
    assert any(note.startswith("action masks: RecurrentPPO") for note in plan.notes)
    multi = _plan({"network_settings": {"vis_encode_type": "resnet"}}, VISUAL_MULTI)
    assert multi.policy == "MultiInputPolicy"
    assert multi.kwargs["policy_kwargs"]["features_extractor_class"] is ObservationEncoderExtractor
    assert multi.kwargs["policy_kwargs"]["features_extractor_kwargs"] == {
        "encoder": "resnet",
        "output_size": 128,
    }
    assert not any("vis_encode_type" in note for note in multi.notes)


def test_sac_rules() -> None:
    sac = {
        "trainer_type": "sac",
        "hyperparameters": {
            "buffer_size": 100000,
            "batch_size": 256,
            "buffer_init_steps": 1000,
            "tau": 0.01,
            "steps_per_update": 4,
            "init_entcoef": 0.5,
        },
    }
    plan = _plan(sac, agents=12)
    assert plan.algorithm == "SAC"
    kwargs = plan.kwargs
    assert kwargs["buffer_size"] == 100000 and kwargs["learning_starts"] == 1000
    assert kwargs["tau"] == 0.01 and kwargs["ent_coef"] == "auto_0.5"
    assert (kwargs["train_freq"], kwargs["gradient_steps"]) == (1, 3)  # 12 agents / 4
    one = _plan(sac, agents=1)
    assert (one.kwargs["train_freq"], one.kwargs["gradient_steps"]) == (4, 1)
    assert kwargs["learning_rate"](0.0) == pytest.approx(3e-4)  # SAC's default is constant


def test_sac_on_discrete_actions_maps_every_setting_as_for_continuous() -> None:
    sac = {
        "trainer_type": "sac",
        "hyperparameters": {
            "buffer_size": 100000,
            "batch_size": 256,
            "buffer_init_steps": 1000,
            "tau": 0.01,
            "steps_per_update": 4,
            "init_entcoef": 0.5,
            "learning_rate_schedule": "linear",
        },
        "network_settings": {"hidden_units": 64, "num_layers": 3},
        "reward_signals": {"extrinsic": {"gamma": 0.9, "strength": 2.0}},
    }
    continuous = _plan(sac, CONTINUOUS, agents=12)
    discrete = _plan(sac, DISCRETE, agents=12)
    assert discrete.algorithm == "DiscreteSAC" and discrete.policy == "MlpPolicy"
    assert discrete.describe()["class"] == "sb3_ext.DiscreteSAC"
    assert discrete.describe()["kwargs"] == continuous.describe()["kwargs"]
    kwargs = discrete.kwargs
    assert kwargs["ent_coef"] == "auto_0.5" and kwargs["learning_starts"] == 1000
    assert (kwargs["train_freq"], kwargs["gradient_steps"]) == (1, 3)
    assert kwargs["learning_rate"](0.0) == pytest.approx(1e-10)  # linear to 1e-10
    assert kwargs["policy_kwargs"]["net_arch"] == {"pi": [64] * 3, "qf": [64] * 3}
    assert discrete.reward_scale == 2.0 and kwargs["gamma"] == 0.9
    visual = _plan(sac, VISUAL_MULTI)
    assert (visual.algorithm, visual.policy) == ("DiscreteSAC", "MultiInputPolicy")
    memory = _plan({**sac, "network_settings": {"memory": {"memory_size": 64}}}, DISCRETE)
    assert memory.algorithm == "DiscreteSAC"
    assert any(
        note.startswith("network_settings.memory: DiscreteSAC has no recurrent policy")
        for note in memory.notes
    )


def test_untrainable_combinations_say_what_to_change() -> None:
    hybrid = BehaviorSpec([_vector(3)], ActionSpec.create_hybrid(2, (2,)))
    for trainer in ("ppo", "sac"):
        with pytest.raises(TranslationError, match="hybrid actions"):
            _plan({"trainer_type": trainer}, hybrid)


def test_settings_without_sb3_counterpart_become_notes() -> None:
    plan = _plan(
        {
            "reward_signals": {
                "extrinsic": {"gamma": 0.99, "strength": 1.0},
                "gail": {"demo_path": "x.demo", "strength": 0.01},
            },
            "behavioral_cloning": {"demo_path": "x.demo", "strength": 0.5},
            "threaded": True,
        }
    )
    notes = "\n".join(plan.notes)
    assert "not available yet" not in notes  # gail and behavioral_cloning train
    assert "threaded: true has no effect" in notes
    assert "time_horizon=64" in notes


def test_whole_numbers_in_the_yaml_translate_as_floats() -> None:
    # The schema types every setting, so SB3 gets floats where ML-Agents has them.
    sac = _plan(
        {
            "trainer_type": "sac",
            "hyperparameters": {"init_entcoef": 1, "tau": 1, "steps_per_update": 2},
            "reward_signals": {"extrinsic": {"gamma": 1, "strength": 2}},
        },
        agents=1,
    )
    assert sac.kwargs["ent_coef"] == "auto_1.0"
    assert (sac.kwargs["train_freq"], sac.kwargs["gradient_steps"]) == (2, 1)
    assert isinstance(sac.kwargs["gamma"], float) and sac.reward_scale == 2.0
    ppo = _plan({"hyperparameters": {"lambd": 1, "epsilon": 1, "beta": 0}})
    assert isinstance(ppo.kwargs["gae_lambda"], float)
    assert ppo.kwargs["clip_range"](1.0) == 1.0 and ppo.kwargs["ent_coef"] == 0.0
    assert ppo.describe()["kwargs"]["clip_range"]["initial"] == 1.0
