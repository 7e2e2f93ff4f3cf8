"""The .demo writer: Unity's byte layout, round trips through our reader, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.conftest import FIXTURES
from unity_gym.base_env import (
    ActionSpec,
    ActionTuple,
    BehaviorSpec,
    DecisionSteps,
    DimensionProperty,
    ObservationSpec,
    ObservationType,
    TerminalSteps,
)
from unity_gym.communicator_objects.agent_info_action_pair_pb2 import AgentInfoActionPairProto
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.demonstration_meta_pb2 import DemonstrationMetaProto
from unity_gym.communicator_objects.observation_pb2 import NONE, PNG
from unity_gym.demo import DemoWriter, load_demonstration, write_demonstration
from unity_gym.demo_writer import INITIAL_POS, write_loaded
from unity_gym.exception import UnityDemoException

pytestmark = pytest.mark.protocol

DEMOS = FIXTURES / "demos"
VECTOR = ObservationSpec((4,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "vec")
VISUAL = ObservationSpec(
    (3, 8, 6),
    (
        DimensionProperty.NONE,
        DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
        DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
    ),
    ObservationType.DEFAULT,
    "camera",
)
HYBRID = BehaviorSpec([VECTOR], ActionSpec(2, (3, 2)))


def _arrays(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    dones = np.zeros(n, bool)
    dones[[3, n - 1]] = True
    interrupted = np.zeros(n, bool)
    interrupted[n - 1] = True
    masks = rng.random((n, 5)) < 0.3
    return {
        "observations": [rng.standard_normal((n, 4)).astype(np.float32)],
        "rewards": rng.standard_normal(n).astype(np.float32),
        "dones": dones,
        "continuous_actions": rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        "discrete_actions": np.stack([rng.integers(0, 3, n), rng.integers(0, 2, n)], 1),
        "max_step_reached": interrupted,
        "action_masks": masks,
        "agent_ids": np.full(n, 7, np.int32),
    }


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def test_round_trip_arrays_counts_and_meta(tmp_path: Path) -> None:
    arrays = _arrays(9)
    path = tmp_path / "hybrid.demo"
    summary = write_demonstration(path, HYBRID, behavior_name="Hybrid?team=0", **arrays)
    demo = load_demonstration(path)
    assert len(demo) == summary.number_steps == 9
    np.testing.assert_array_equal(demo.observations[0], arrays["observations"][0])
    for key in ("rewards", "dones", "continuous_actions", "max_step_reached", "action_masks"):
        np.testing.assert_array_equal(getattr(demo, key), arrays[key], err_msg=key)
    np.testing.assert_array_equal(demo.discrete_actions, arrays["discrete_actions"])
    np.testing.assert_array_equal(demo.agent_ids, arrays["agent_ids"])
    assert demo.action_recorded.all()
    assert demo.behavior_spec == HYBRID
    assert demo.behavior_name == "Hybrid?team=0"
    info = demo.files[0]
    # Both episodes end with a done record: 2 episodes, mean = total reward / 2.
    assert (info.number_steps, info.number_episodes, summary.number_episodes) == (9, 2, 2)
    assert info.mean_reward == pytest.approx(float(arrays["rewards"].sum()) / 2, rel=1e-5)
    assert info.api_version == 1
    assert info.demonstration_name == "hybrid"
    assert len(demo.transitions()) == 8  # every record but the last, as ML-Agents pairs them


def test_unfinished_last_episode_counts_like_unity(tmp_path: Path) -> None:
    arrays = _arrays(9)
    arrays["dones"][-1] = False
    summary = write_demonstration(tmp_path / "open.demo", HYBRID, **arrays)
    assert summary.number_episodes == 2  # one ended at record 3, one still running
    assert summary.mean_reward == pytest.approx(float(arrays["rewards"].sum()) / 2, rel=1e-5)


def test_byte_layout_is_unitys(tmp_path: Path) -> None:
    path = tmp_path / "layout.demo"
    arrays = _arrays(6)
    write_demonstration(path, HYBRID, behavior_name="Hybrid?team=0", **arrays)
    data = path.read_bytes()
    length, body = _varint(data, 0)
    meta = DemonstrationMetaProto.FromString(data[body : body + length])
    assert (meta.api_version, meta.number_steps, meta.demonstration_name) == (1, 6, "layout")
    assert body + length <= INITIAL_POS == 33
    assert data[body + length : INITIAL_POS] == bytes(INITIAL_POS - body - length)  # zero pad
    length, pos = _varint(data, INITIAL_POS)
    brain = BrainParametersProto.FromString(data[pos : pos + length])
    assert brain.brain_name == "Hybrid?team=0" and not brain.is_training
    assert list(brain.action_spec.discrete_branch_sizes) == [3, 2]
    assert brain.action_spec.num_continuous_actions == 2
    pos += length
    for t in range(6):
        length, pos = _varint(data, pos)
        pair = AgentInfoActionPairProto.FromString(data[pos : pos + length])
        pos += length
        assert pair.agent_info.observations[0].compression_type == NONE
        assert pair.agent_info.done == bool(arrays["dones"][t])
        assert list(pair.action_info.discrete_actions) == arrays["discrete_actions"][t].tolist()
    # Unity's WriteMetadata leaves a copy of the final meta (no length prefix) at the end.
    assert data[pos:] == meta.SerializeToString()


def test_fixture_layout_matches(tmp_path: Path) -> None:
    """A real Unity recording and our copy of it agree on every structural byte."""
    source = DEMOS / "test_3dball_cont.demo"
    copy = tmp_path / "test_3dball_cont.demo"
    write_loaded(copy, load_demonstration(source))
    theirs, ours = source.read_bytes(), copy.read_bytes()
    for data in (theirs, ours):
        length, body = _varint(data, 0)
        assert data[body + length : INITIAL_POS].strip(b"\0") == b""
        assert data.endswith(data[body : body + length])
    a, b = load_demonstration(source), load_demonstration(copy)
    assert a.files[0].number_episodes == b.files[0].number_episodes == 22
    assert a.files[0].mean_reward == pytest.approx(b.files[0].mean_reward, rel=1e-5)


@pytest.mark.parametrize("name", sorted(p.name for p in DEMOS.glob("*.demo")))
def test_real_recordings_round_trip(name: str, tmp_path: Path) -> None:
    original = load_demonstration(DEMOS / name)
    write_loaded(tmp_path / name, original)
    copy = load_demonstration(tmp_path / name)
    assert copy.behavior_spec == original.behavior_spec
    for a, b in zip(original.observations, copy.observations, strict=True):
        np.testing.assert_array_equal(a, b)
    for key in ("continuous_actions", "discrete_actions", "rewards", "dones", "agent_ids"):
        np.testing.assert_array_equal(getattr(copy, key), getattr(original, key), err_msg=key)
    if original.action_masks is not None:
        np.testing.assert_array_equal(copy.action_masks, original.action_masks)
    assert copy.files[0].number_episodes == original.files[0].number_episodes


@pytest.mark.parametrize("compress", [True, False])
def test_visual_observations(tmp_path: Path, compress: bool) -> None:
    spec = BehaviorSpec([VISUAL, VECTOR], ActionSpec.create_discrete((3,)))
    rng = np.random.default_rng(1)
    images = rng.integers(0, 256, (5, *VISUAL.shape)).astype(np.float32) / np.float32(255)
    vectors = rng.standard_normal((5, 4)).astype(np.float32)
    path = tmp_path / "visual.demo"
    write_demonstration(
        path,
        spec,
        [images, vectors],
        rewards=np.zeros(5, np.float32),
        dones=np.array([0, 0, 0, 0, 1], bool),
        discrete_actions=np.zeros((5, 1), np.int32),
        compress_visual=compress,
    )
    demo = load_demonstration(path)
    np.testing.assert_array_equal(demo.observations[0], images)
    np.testing.assert_array_equal(demo.observations[1], vectors)
    assert demo.behavior_spec.observation_specs[0].shape == (3, 8, 6)
    data = path.read_bytes()
    _, pos = _varint(data, INITIAL_POS)
    pos += _varint(data, INITIAL_POS)[0]
    length, pos = _varint(data, pos)
    first = AgentInfoActionPairProto.FromString(data[pos : pos + length])
    assert first.agent_info.observations[0].compression_type == (PNG if compress else NONE)


def test_add_steps_writes_whole_episodes_per_agent(tmp_path: Path) -> None:
    spec = BehaviorSpec([VECTOR], ActionSpec.create_continuous(1))

    def decisions(ids: list[int], value: float) -> DecisionSteps:
        n = len(ids)
        obs = np.full((n, 4), value, np.float32)
        zeros = np.zeros(n, np.float32)
        return DecisionSteps([obs], np.full(n, value, np.float32), np.array(ids), zeros, zeros)

    def terminals(ids: list[int], value: float) -> TerminalSteps:
        n = len(ids)
        obs = np.full((n, 4), value, np.float32)
        zeros = np.zeros(n, np.float32)
        reward = np.full(n, value, np.float32)
        return TerminalSteps([obs], reward, np.array(ids), zeros, zeros, interrupted=zeros > 0)

    def act(n: int, value: float) -> ActionTuple:
        return ActionTuple(continuous=np.full((n, 1), value, np.float32))

    empty_t, empty_d = TerminalSteps.empty(spec), DecisionSteps.empty(spec)
    path = tmp_path / "agents.demo"
    with DemoWriter(path, spec) as writer:
        assert writer.add_steps(decisions([0, 1], 1.0), empty_t, act(2, 0.5)) == 0
        assert writer.add_steps(decisions([0, 1], 2.0), empty_t, act(2, 0.25)) == 0
        # Agent 1 ends first, then agent 0; an episode beyond max_episodes is dropped.
        assert writer.add_steps(empty_d, terminals([1], 3.0), None) == 1
        assert writer.add_steps(decisions([1], 4.0), terminals([0], 5.0), act(1, 0.0)) == 1
        assert writer.add_steps(empty_d, terminals([1], 6.0), None, max_episodes=2) == 0
        summary = writer.close()
    demo = load_demonstration(path)
    assert summary.number_episodes == demo.files[0].number_episodes == 2
    np.testing.assert_array_equal(demo.agent_ids, [1, 1, 1, 0, 0, 0])
    np.testing.assert_array_equal(demo.rewards, [1, 2, 3, 1, 2, 5])
    np.testing.assert_array_equal(demo.dones, [0, 0, 1, 0, 0, 1])
    # Terminal records carry a zero action, decisions the action taken from them.
    np.testing.assert_array_equal(demo.continuous_actions[:, 0], [0.5, 0.25, 0, 0.5, 0.25, 0])


def test_atomic_write_keeps_old_file_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "keep.demo"
    path.write_bytes(b"previous")
    with pytest.raises(RuntimeError), DemoWriter(path, HYBRID) as writer:
        writer.add_step([np.zeros(4)], continuous_action=np.zeros(2), discrete_action=[0, 0])
        raise RuntimeError("crash while recording")
    assert path.read_bytes() == b"previous"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.demo"]  # no temporary left
    # While recording, nothing but a hidden temporary file exists under another name.
    fresh = tmp_path / "fresh.demo"
    writer = DemoWriter(fresh, HYBRID)
    writer.add_step([np.zeros(4)])
    assert not fresh.exists()
    writer.close()
    assert fresh.exists() and len(load_demonstration(fresh)) == 1


def test_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(UnityDemoException, match=r"must end in \.demo"):
        DemoWriter(tmp_path / "x.bin", HYBRID)
    with pytest.raises(UnityDemoException, match="does not exist"):
        DemoWriter(tmp_path / "missing" / "x.demo", HYBRID)
    with DemoWriter(tmp_path / "bad.demo", HYBRID) as writer:
        with pytest.raises(UnityDemoException, match=r"shape \(3,\) but the behavior spec"):
            writer.add_step([np.zeros(3)])
        with pytest.raises(UnityDemoException, match="continuous action has 3 values"):
            writer.add_step([np.zeros(4)], continuous_action=np.zeros(3))
        with pytest.raises(UnityDemoException, match="2 observations but the behavior spec has 1"):
            writer.add_step([np.zeros(4), np.zeros(4)])
        with pytest.raises(UnityDemoException, match="Nothing was written"):
            writer.close()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(UnityDemoException, match="rewards has 9"):
        arrays = _arrays(9)
        arrays["dones"] = arrays["dones"][:5]
        write_demonstration(tmp_path / "short.demo", HYBRID, **arrays)


def test_long_name_is_cut_to_fit_the_header(tmp_path: Path) -> None:
    path = tmp_path / "a_really_long_demonstration_name.demo"
    write_demonstration(path, HYBRID, **_arrays(5))
    assert load_demonstration(path).files[0].demonstration_name == "a_really_long_de"
