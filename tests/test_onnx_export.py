"""ONNX export: outputs match the SB3 policies, and the interface matches mlagents-learn's."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

import gymnasium as gym
import numpy as np
import torch
from sb3_contrib import MaskablePPO, RecurrentPPO
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

from sb3_ext.algorithms import DiscreteSAC
from sb3_ext.networks import (
    VISUAL_ENCODER_TYPES,
    ObservationEncoderExtractor,
    VisualEncoderExtractor,
)
from sb3_ext.onnx_export import (
    ModelInterface,
    TensorInfo,
    check_against_spec,
    export_onnx,
    inspect_onnx,
)
from tests.conftest import FIXTURES
from unity_gym.base_env import (
    ActionSpec,
    BehaviorSpec,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
)
from unity_gym.spaces import SpaceConverter

REFERENCES = FIXTURES / "onnx"
TINY = {"net_arch": [8]}
SENTIS_OPS = {
    "Add", "ArgMax", "Clip", "Concat", "Constant", "Conv", "Div", "Exp", "Flatten", "Gemm",
    "Identity", "LeakyRelu", "Log", "LSTM", "MatMul", "MaxPool", "Mul", "Multinomial",
    "RandomNormalLike", "Relu", "Reshape", "Sigmoid", "Slice", "Softmax", "Sqrt", "Squeeze",
    "Sub", "Tanh", "Transpose", "Unsqueeze",
}  # fmt: skip


# -- helpers ---------------------------------------------------------------------------------


def vector(size: int, name: str = "") -> ObservationSpec:
    return ObservationSpec((size,), (DimensionProperty.NONE,), ObservationType.DEFAULT, name)


def visual(shape: tuple[int, int, int], name: str = "") -> ObservationSpec:
    conv = DimensionProperty.TRANSLATIONAL_EQUIVARIANCE
    props = (DimensionProperty.NONE, conv, conv)
    return ObservationSpec(shape, props, ObservationType.DEFAULT, name)


def spec_of(observations: list[ObservationSpec], continuous: int = 0, branches=()) -> BehaviorSpec:
    return BehaviorSpec(observations, ActionSpec(continuous, tuple(branches)))


class SpaceEnv(gym.Env):
    """A do-nothing env with the given spaces, to construct SB3 models."""

    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.observation_space, self.action_space = observation_space, action_space

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


def env_for(spec: BehaviorSpec, visual_dtype: str = "uint8") -> SpaceEnv:
    converter = SpaceConverter.for_behavior(spec, visual_dtype)
    return SpaceEnv(converter.observation_space, converter.action_space)


def make(algo: type, spec: BehaviorSpec, policy: str = "MlpPolicy", visual_dtype="uint8", **kw):
    torch.manual_seed(0)
    kw.setdefault("policy_kwargs", dict(TINY))
    env = env_for(spec, visual_dtype)
    if algo in (SAC, DiscreteSAC):
        kw.setdefault("buffer_size", 64)
        return algo(policy, env, learning_starts=0, device="cpu", seed=0, **kw)
    return algo(policy, env, n_steps=8, batch_size=8, device="cpu", seed=0, **kw)


def unity_obs(spec: BehaviorSpec, n: int, seed: int = 0) -> list[np.ndarray]:
    """Observations as Unity sends them to a model: visual ones float32 in [0, 1]."""
    rng = np.random.default_rng(seed)
    out = []
    for s in spec.observation_specs:
        if s.is_visual:
            out.append((rng.integers(0, 256, (n, *s.shape)) / 255.0).astype(np.float32))
        else:
            out.append(rng.normal(0.0, 2.0, (n, *s.shape)).astype(np.float32))
    return out


def training_obs(spec: BehaviorSpec, batch: list[np.ndarray], visual_dtype="uint8") -> Any:
    """The same observations as the adapters hand them to SB3."""
    converter = SpaceConverter.for_behavior(spec, visual_dtype)
    return converter.observations(batch)


def export(model: Any, spec: BehaviorSpec, tmp_path: Path, name: str = "model", **kw) -> Path:
    path = export_onnx(model, spec, tmp_path / f"{name}.onnx", **kw)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert ops <= SENTIS_OPS, ops - SENTIS_OPS
    return path


def run(path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, feed), strict=True))


def feed_of(obs: list[np.ndarray], **extra: np.ndarray) -> dict[str, np.ndarray]:
    feed = {f"obs_{i}": o for i, o in enumerate(obs)}
    feed.update(extra)
    return feed


# -- continuous actions ----------------------------------------------------------------------

BALL = spec_of([vector(8)], continuous=2)


@pytest.mark.parametrize("opset", [9, 15])
def test_ppo_continuous_matches_predict(tmp_path: Path, opset: int) -> None:
    model = make(PPO, BALL)
    target = model if opset == 9 else model.policy  # an algorithm or its policy
    path = export(target, BALL, tmp_path, opset=opset)
    obs = unity_obs(BALL, 16)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(obs[0], deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)
    assert out["continuous_actions"].shape == (16, 2)
    assert inspect_onnx(path).opset == opset


def test_ppo_continuous_samples_gaussian_clipped(tmp_path: Path) -> None:
    model = make(PPO, BALL, policy_kwargs={"net_arch": [8], "log_std_init": -1.5})
    path = export(model, BALL, tmp_path)
    obs = np.repeat(unity_obs(BALL, 1)[0], 20000, axis=0)
    out = run(path, {"obs_0": obs})
    samples, mode = out["continuous_actions"], out["deterministic_continuous_actions"][0]
    assert samples.min() >= -1.0 and samples.max() <= 1.0
    np.testing.assert_allclose(samples.mean(axis=0), mode, atol=0.02)
    np.testing.assert_allclose(samples.std(axis=0), np.exp(-1.5), rtol=0.06)


def test_sac_matches_predict_and_samples_squashed(tmp_path: Path) -> None:
    model = make(SAC, BALL)
    path = export(model, BALL, tmp_path)
    obs = unity_obs(BALL, 16)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(obs[0], deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)

    one = np.repeat(obs[0][:1], 20000, axis=0)
    samples = run(path, {"obs_0": one})["continuous_actions"]
    assert np.all(np.abs(samples) < 1.0)
    with torch.no_grad():
        mean, log_std, _ = model.actor.get_action_dist_params(torch.as_tensor(obs[0][:1]))
    gaussian = np.arctanh(np.clip(samples, -0.999999, 0.999999))
    np.testing.assert_allclose(gaussian.mean(axis=0), mean[0].numpy(), atol=0.05)
    np.testing.assert_allclose(gaussian.std(axis=0), np.exp(log_std[0].numpy()), rtol=0.06)


@pytest.mark.parametrize("algo", [PPO, SAC])
def test_gsde_policies_match_predict(tmp_path: Path, algo: type) -> None:
    model = make(algo, BALL, use_sde=True)
    path = export(model, BALL, tmp_path)
    obs = unity_obs(BALL, 16)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(obs[0], deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)
    assert np.all(np.abs(out["continuous_actions"]) <= 1.0)


# -- discrete actions ------------------------------------------------------------------------


@pytest.mark.parametrize("algo", [PPO, DiscreteSAC])
@pytest.mark.parametrize("branches", [(3,), (3, 2, 4)])
def test_discrete_matches_predict(tmp_path: Path, branches: tuple[int, ...], algo: type) -> None:
    spec = spec_of([vector(6)], branches=branches)
    model = make(algo, spec)
    path = export(model, spec, tmp_path)
    obs = unity_obs(spec, 32)
    masks = np.ones((32, sum(branches)), np.float32)
    out = run(path, feed_of(obs, action_masks=masks))
    expected, _ = model.predict(obs[0], deterministic=True)
    det = out["deterministic_discrete_actions"]
    assert det.dtype == np.int64 and det.shape == (32, len(branches))
    np.testing.assert_array_equal(det, np.asarray(expected).reshape(32, -1))
    assert out["discrete_actions"].shape == (32, len(branches))
    assert np.all((out["discrete_actions"] >= 0) & (out["discrete_actions"] < branches))


def test_discrete_samples_follow_policy_probabilities(tmp_path: Path) -> None:
    spec = spec_of([vector(6)], branches=(3,))
    model = make(PPO, spec, policy_kwargs={"net_arch": [8], "ortho_init": False})
    path = export(model, spec, tmp_path)
    obs = np.repeat(unity_obs(spec, 1)[0], 20000, axis=0)
    sampled = run(path, {"obs_0": obs, "action_masks": np.ones((20000, 3), np.float32)})
    with torch.no_grad():
        probs = model.policy.get_distribution(torch.as_tensor(obs[:1])).distribution.probs
    counts = np.bincount(sampled["discrete_actions"][:, 0], minlength=3) / 20000
    np.testing.assert_allclose(counts, probs[0].numpy(), atol=0.03)


@pytest.mark.parametrize("algo", [MaskablePPO, PPO, DiscreteSAC])
def test_masked_actions_are_never_chosen(tmp_path: Path, algo: type) -> None:
    branches = (3, 4)
    spec = spec_of([vector(6)], branches=branches)
    kwargs: dict[str, Any] = {"net_arch": [8]}
    if algo is not DiscreteSAC:
        kwargs["ortho_init"] = False
    model = make(algo, spec, policy_kwargs=kwargs)
    path = export(model, spec, tmp_path)
    n = 1000
    rng = np.random.default_rng(1)
    masks = rng.random((n, sum(branches))) < 0.5
    for start, size in ((0, 3), (3, 4)):  # keep one option allowed per branch
        keep = rng.integers(0, size, n)
        masks[np.arange(n), start + keep] = True
    obs = unity_obs(spec, n)
    out = run(path, feed_of(obs, action_masks=masks.astype(np.float32)))
    for name in ("discrete_actions", "deterministic_discrete_actions"):
        actions = out[name]
        assert masks[np.arange(n), actions[:, 0]].all(), name
        assert masks[np.arange(n), 3 + actions[:, 1]].all(), name
    if algo in (MaskablePPO, DiscreteSAC):
        expected, _ = model.predict(obs[0], action_masks=masks, deterministic=True)
        np.testing.assert_array_equal(out["deterministic_discrete_actions"], expected)


# -- memory ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("layers", "continuous", "opset"), [(1, True, 9), (2, False, 15)])
def test_recurrent_memory_round_trips(
    tmp_path: Path, layers: int, continuous: bool, opset: int
) -> None:
    spec = spec_of([vector(5)], continuous=2) if continuous else spec_of([vector(5)], branches=(4,))
    hidden = 6
    kwargs = {"net_arch": [8], "lstm_hidden_size": hidden, "n_lstm_layers": layers}
    model = make(RecurrentPPO, spec, "MlpLstmPolicy", policy_kwargs=kwargs)
    path = export(model, spec, tmp_path, opset=opset)
    interface = inspect_onnx(path)
    memory_size = 2 * layers * hidden
    assert interface.memory_size == memory_size
    assert interface.input("recurrent_in") == TensorInfo(
        "recurrent_in", ("batch", 1, memory_size), "float32"
    )
    n = 4
    memory = np.zeros((n, 1, memory_size), np.float32)
    state = None
    starts = np.ones(n, bool)
    for step in range(5):
        obs = unity_obs(spec, n, seed=step)
        feed = feed_of(obs, recurrent_in=memory)
        if not continuous:
            feed["action_masks"] = np.ones((n, 4), np.float32)
        out = run(path, feed)
        expected, state = model.predict(
            obs[0], state=state, episode_start=starts, deterministic=True
        )
        starts = np.zeros(n, bool)
        name = (
            "deterministic_continuous_actions" if continuous else "deterministic_discrete_actions"
        )
        np.testing.assert_allclose(
            out[name], np.asarray(expected).reshape(n, -1), atol=1e-5, err_msg=f"step {step}"
        )
        h, c = state  # (layers, n, hidden) each -> [h_0 .. h_L-1, c_0 .. c_L-1]
        packed = np.concatenate([*h, *c], axis=-1)[:, None, :]
        np.testing.assert_allclose(out["recurrent_out"], packed, atol=1e-5)
        memory = out["recurrent_out"]


# -- observation kinds -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("visual_dtype", "algo"), [("uint8", PPO), ("float32", PPO), ("uint8", DiscreteSAC)]
)
def test_cnn_policy_takes_unity_visual_observations(
    tmp_path: Path, visual_dtype: str, algo: type
) -> None:
    spec = spec_of([visual((3, 36, 36))], branches=(3,))
    extractor = {"features_dim": 16}
    if visual_dtype == "float32":
        extractor["normalized_image"] = True
    kwargs = {"net_arch": [8], "features_extractor_kwargs": extractor}
    model = make(algo, spec, "CnnPolicy", visual_dtype=visual_dtype, policy_kwargs=kwargs)
    path = export(model, spec, tmp_path)
    assert inspect_onnx(path).input("obs_0") == TensorInfo("obs_0", ("batch", 3, 36, 36), "float32")
    obs = unity_obs(spec, 8)
    expected, _ = model.predict(training_obs(spec, obs, visual_dtype), deterministic=True)
    out = run(path, feed_of(obs, action_masks=np.ones((8, 3), np.float32)))
    np.testing.assert_array_equal(out["deterministic_discrete_actions"][:, 0], expected)


# ML-Agents' encoders (vis_encode_type), alone and with a vector beside; 36x40 fits them all.
ENCODER_SPECS = {
    "image": (spec_of([visual((3, 36, 40), "camera")], branches=(3,)), "CnnPolicy"),
    "image+vector": (
        spec_of([visual((3, 36, 40), "camera"), vector(5, "ray")], branches=(3,)),
        "MultiInputPolicy",
    ),
}


@pytest.mark.parametrize("observations", sorted(ENCODER_SPECS))
@pytest.mark.parametrize("encoder", VISUAL_ENCODER_TYPES)
@pytest.mark.parametrize("algo", [PPO, DiscreteSAC])
def test_mlagents_visual_encoders_export(
    tmp_path: Path, algo: type, encoder: str, observations: str
) -> None:
    spec, policy = ENCODER_SPECS[observations]
    extractor = VisualEncoderExtractor if policy == "CnnPolicy" else ObservationEncoderExtractor
    kwargs = {
        "net_arch": [8],
        "features_extractor_class": extractor,
        "features_extractor_kwargs": {"encoder": encoder, "output_size": 8},
    }
    model = make(algo, spec, policy, policy_kwargs=kwargs)
    path = export(model, spec, tmp_path)  # checked against the spec and the torch graph
    interface = inspect_onnx(path)
    assert interface.input("obs_0") == TensorInfo("obs_0", ("batch", 3, 36, 40), "float32")
    assert check_against_spec(interface, spec) == []
    obs = unity_obs(spec, 16)
    out = run(path, feed_of(obs, action_masks=np.ones((16, 3), np.float32)))
    expected, _ = model.predict(training_obs(spec, obs), deterministic=True)
    np.testing.assert_array_equal(out["deterministic_discrete_actions"][:, 0], expected)


MIXED = spec_of([vector(4, "zeta"), visual((3, 36, 36), "camera"), vector(2, "alpha")], 3)


def test_dict_observations_map_in_spec_order(tmp_path: Path) -> None:
    kwargs = {"net_arch": [8], "features_extractor_kwargs": {"cnn_output_dim": 8}}
    model = make(PPO, MIXED, "MultiInputPolicy", policy_kwargs=kwargs)
    assert list(model.observation_space.spaces) == ["alpha", "camera", "zeta"]  # sorted keys
    path = export(model, MIXED, tmp_path)
    names = [t.name for t in inspect_onnx(path).inputs]
    assert names == ["obs_0", "obs_1", "obs_2"]
    obs = unity_obs(MIXED, 8)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(training_obs(MIXED, obs), deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)


def _fake_statistics(vec_normalize: VecNormalize, rng: np.random.Generator) -> None:
    stats = vec_normalize.obs_rms
    for rms in stats.values() if isinstance(stats, dict) else [stats]:
        rms.mean = rng.normal(0.0, 1.0, rms.mean.shape)
        rms.var = rng.uniform(0.2, 3.0, rms.var.shape)


@pytest.mark.parametrize("given", ["vecnormalize", "obs_rms"])
def test_vecnormalize_is_folded_in(tmp_path: Path, given: str) -> None:
    model = make(PPO, BALL)
    clip = 1.5 if given == "vecnormalize" else 10.0
    vn = VecNormalize(DummyVecEnv([lambda: env_for(BALL)]), clip_obs=clip, training=False)
    _fake_statistics(vn, np.random.default_rng(2))
    path = export(
        model, BALL, tmp_path, normalization=vn if given == "vecnormalize" else vn.obs_rms
    )
    obs = unity_obs(BALL, 32)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(vn.normalize_obs(obs[0]), deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)


def test_vecnormalize_folds_per_dict_key(tmp_path: Path) -> None:
    kwargs = {"net_arch": [8], "features_extractor_kwargs": {"cnn_output_dim": 8}}
    model = make(PPO, MIXED, "MultiInputPolicy", policy_kwargs=kwargs)
    venv = DummyVecEnv([lambda: env_for(MIXED)])
    keys = ["alpha", "camera", "zeta"]  # the uint8 camera too: scaled, normalised, then /255
    vn = VecNormalize(venv, norm_obs_keys=keys[:-1], clip_obs=2.0, training=False)
    _fake_statistics(vn, np.random.default_rng(3))
    path = export(model, MIXED, tmp_path, normalization=vn)
    obs = unity_obs(MIXED, 16)
    out = run(path, feed_of(obs))
    expected, _ = model.predict(vn.normalize_obs(training_obs(MIXED, obs)), deterministic=True)
    np.testing.assert_allclose(out["deterministic_continuous_actions"], expected, atol=1e-5)


# -- interface against mlagents-learn's exports ----------------------------------------------

REFERENCE_SPECS = {
    "3DBall": (spec_of([vector(8)], continuous=2), "MlpPolicy"),
    "Basic": (spec_of([vector(20)], branches=(3,)), "MlpPolicy"),
    "GridWorldColab": (spec_of([visual((3, 64, 84))], branches=(5,)), "CnnPolicy"),
    "Pyramids": (
        spec_of([vector(56, f"ray{i}") for i in range(3)] + [vector(4, "state")], branches=(5,)),
        "MultiInputPolicy",
    ),
    "Match3VectorObs": (
        spec_of([vector(432, "board"), vector(216, "specials")], branches=(127,)),
        "MultiInputPolicy",
    ),
}
DETERMINISTIC = {"deterministic_continuous_actions", "deterministic_discrete_actions"}


@pytest.fixture
def references() -> Path:
    if not REFERENCES.is_dir():
        pytest.fail(f"ML-Agents reference models not found at {REFERENCES}")
    return REFERENCES


def _rank_and_dtype(info: TensorInfo) -> tuple[int, str]:
    return info.rank, info.dtype


@pytest.mark.parametrize(
    ("name", "algo"),
    [(name, PPO) for name in sorted(REFERENCE_SPECS)]
    + [("Basic", DiscreteSAC), ("GridWorldColab", DiscreteSAC), ("Pyramids", DiscreteSAC)],
    ids=lambda v: v if isinstance(v, str) else v.__name__,
)
def test_interface_matches_mlagents_export(
    tmp_path: Path, references: Path, name: str, algo: type
) -> None:
    spec, policy = REFERENCE_SPECS[name]
    reference = inspect_onnx(references / f"{name}.onnx")
    assert check_against_spec(reference, spec) == []

    kwargs: dict[str, Any] = {"net_arch": [8]}
    if policy == "CnnPolicy":
        kwargs["features_extractor_kwargs"] = {"features_dim": 8}
    model = make(algo, spec, policy, policy_kwargs=kwargs)
    ours = inspect_onnx(export(model, spec, tmp_path, name))
    assert check_against_spec(ours, spec) == []

    assert ours.opset == reference.opset == 9
    assert [t.name for t in ours.inputs] == [t.name for t in reference.inputs]
    for theirs in reference.inputs:
        mine = ours.input(theirs.name)
        assert mine is not None and mine.shape[1:] == theirs.shape[1:]
        assert _rank_and_dtype(mine) == _rank_and_dtype(theirs)
        assert isinstance(mine.shape[0], str) and isinstance(theirs.shape[0], str)
    their_outputs = {t.name for t in reference.outputs}
    our_outputs = {t.name for t in ours.outputs}
    assert their_outputs <= our_outputs and our_outputs - their_outputs <= DETERMINISTIC
    for theirs in reference.outputs:
        mine = ours.output(theirs.name)
        assert mine is not None and _rank_and_dtype(mine) == _rank_and_dtype(theirs), theirs
    assert set(ours.constants) == set(reference.constants)
    for key, value in reference.constants.items():
        assert ours.constants[key].dtype == value.dtype, key
        assert ours.constants[key].shape == value.shape, key
        np.testing.assert_array_equal(ours.constants[key], value, err_msg=key)


def test_inspect_reads_reference_constants(references: Path) -> None:
    ball = inspect_onnx(references / "3DBall.onnx")
    assert (ball.version_number, ball.memory_size) == (3, 0)
    assert ball.continuous_action_output_shape == (2,)
    assert ball.discrete_action_output_shape is None
    assert ball.input("obs_0") == TensorInfo("obs_0", ("batch", 8), "float32")
    grid = inspect_onnx(references / "GridWorldColab.onnx")
    assert grid.discrete_action_output_shape == (5,)
    assert [t.name for t in grid.inputs] == ["obs_0", "action_masks"]
    assert any(line.startswith("  version_number") for line in grid.describe())


def test_check_against_spec_lists_mismatches(references: Path) -> None:
    ball = inspect_onnx(references / "3DBall.onnx")
    problems = check_against_spec(ball, spec_of([vector(20)], branches=(3,)))
    text = "\n".join(problems)
    assert "obs_0" in text and "action_masks" in text and "discrete_actions" in text
    assert "continuous actions; the behavior has none" in text
    problems = check_against_spec(ball, spec_of([vector(8), vector(2)], continuous=3))
    assert any("obs_1" in p for p in problems)
    assert any("continuous_action_output_shape" in p for p in problems)

    recurrent = ModelInterface(
        inputs=(TensorInfo("obs_0", ("batch", 8), "float32"),),
        outputs=ball.outputs,
        opset=17,
        constants={**ball.constants, "memory_size": np.array([16.0], np.float32)},
    )
    problems = check_against_spec(recurrent, BALL)
    assert any("recurrent_in" in p for p in problems) and any("opset 17" in p for p in problems)


# -- refusals and hygiene --------------------------------------------------------------------


def test_export_refuses_what_it_cannot_represent(tmp_path: Path) -> None:
    model = make(PPO, BALL)
    with pytest.raises(ValueError, match="Hybrid"):
        export_onnx(model, spec_of([vector(8)], continuous=2, branches=(3,)), tmp_path / "h.onnx")
    with pytest.raises(ValueError, match="observation"):
        export_onnx(model, spec_of([vector(9)], continuous=2), tmp_path / "o.onnx")
    with pytest.raises(ValueError, match="action space"):
        export_onnx(model, spec_of([vector(8)], continuous=3), tmp_path / "a.onnx")
    with pytest.raises(ValueError, match="opset"):
        export_onnx(model, BALL, tmp_path / "p.onnx", opset=8)


def test_export_is_quiet_and_leaves_the_model_alone(tmp_path: Path) -> None:
    spec = spec_of([vector(5)], branches=(4,))
    model = make(RecurrentPPO, spec, "MlpLstmPolicy", policy_kwargs={"lstm_hidden_size": 4})
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        export(model, spec, tmp_path)
    assert [str(w.message) for w in caught] == []
    after = model.policy.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert model.policy.training  # still in SB3's default training mode
