"""The .demo reader: ML-Agents release 21 recordings, synthetic files, and broken files."""

from __future__ import annotations

import io
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import FIXTURES
from unity_gym.communicator_objects.agent_action_pb2 import AgentActionProto
from unity_gym.communicator_objects.agent_info_action_pair_pb2 import AgentInfoActionPairProto
from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.brain_parameters_pb2 import BrainParametersProto
from unity_gym.communicator_objects.demonstration_meta_pb2 import DemonstrationMetaProto
from unity_gym.communicator_objects.observation_pb2 import ObservationProto
from unity_gym.demo import Demonstration, load_demonstration
from unity_gym.exception import UnityDemoException

pytestmark = pytest.mark.protocol

DEMOS = FIXTURES / "demos"


@pytest.fixture
def demos() -> Path:
    if not DEMOS.is_dir():
        pytest.fail(f"ML-Agents reference demos not found at {DEMOS}")
    return DEMOS


# name: records, observation shapes (channel-first), stored channel-last, continuous, branches
EXPECTED = {
    "ExpertBasic.demo": (73, [(20,)], (False,), 0, (3,)),
    "Expert3DBall.demo": (549, [(8,)], (False,), 2, ()),
    "ExpertGridWorld.demo": (53, [(3, 64, 84)], (True,), 0, (5,)),
    "ExpertPyramid.demo": (1751, [(56,), (56,), (56,), (4,)], (False,) * 4, 0, (5,)),
    "test_3dball_cont.demo": (2144, [(8,)], (False,), 2, ()),
    "test_discrete_visual.demo": (38, [(3, 84, 84), (0,)], (True, False), 0, (3, 3, 3, 2)),
    "test_hybrid_visual.demo": (25, [(3, 84, 84), (1,)], (False, False), 3, (2,)),
    "test_demo_dir": (75, [(8,)], (False,), 2, ()),
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fixture_counts_and_shapes(demos: Path, name: str) -> None:
    n, shapes, channel_last, continuous, branches = EXPECTED[name]
    demo = load_demonstration(demos / name)
    assert len(demo) == n
    spec = demo.behavior_spec
    assert [s.shape for s in spec.observation_specs] == shapes
    assert spec.action_spec.continuous_size == continuous
    assert spec.action_spec.discrete_branches == branches
    assert [o.shape for o in demo.observations] == [(n, *s) for s in shapes]
    assert all(o.dtype == np.float32 for o in demo.observations)
    assert all(np.isfinite(o).all() for o in demo.observations)
    assert demo.continuous_actions.shape == (n, continuous)
    assert demo.continuous_actions.dtype == np.float32
    assert demo.discrete_actions.shape == (n, len(branches))
    assert demo.discrete_actions.dtype == np.int32
    for branch, size in enumerate(branches):
        assert demo.discrete_actions[:, branch].min() >= 0
        assert demo.discrete_actions[:, branch].max() < size
    for array, dtype in (
        (demo.rewards, np.float32),
        (demo.dones, np.bool_),
        (demo.max_step_reached, np.bool_),
        (demo.agent_ids, np.int32),
        (demo.action_recorded, np.bool_),
    ):
        assert array.shape == (n,)
        assert array.dtype == dtype
    assert demo.files[0].channel_last == channel_last
    assert demo.files[-1].stop == n
    assert sum(f.number_steps for f in demo.files) == n
    transitions = demo.transitions()
    assert len(transitions) == n - len(demo.files)
    assert len(list(transitions)) == len(transitions)


def test_basic_one_hot_observations(demos: Path) -> None:
    demo = load_demonstration(demos / "ExpertBasic.demo")
    assert demo.behavior_name == "BasicLearning"
    np.testing.assert_array_equal(demo.observations[0].sum(axis=1), 1.0)
    assert set(np.unique(demo.observations[0])) == {0.0, 1.0}
    assert demo.action_masks is None
    info = demo.files[0]
    assert (info.demonstration_name, info.api_version, info.number_episodes) == (
        "ExpertBasic",
        1,
        11,
    )
    assert demo.dones.sum() == 10
    # The last record was written without an action.
    assert not demo.action_recorded[-1] and demo.action_recorded[:-1].all()


def test_3dball_actions_in_range(demos: Path) -> None:
    demo = load_demonstration(demos / "Expert3DBall.demo")
    recorded = demo.continuous_actions[demo.action_recorded]
    assert np.abs(recorded).max() <= 1.0
    assert np.abs(recorded).max() > 0.1
    np.testing.assert_array_equal(demo.continuous_actions[~demo.action_recorded], 0.0)
    assert demo.files[0].mean_reward == pytest.approx(54.8, abs=0.01)


def test_gridworld_channel_last_floats_become_channel_first(demos: Path) -> None:
    demo = load_demonstration(demos / "ExpertGridWorld.demo")
    images = demo.observations[0]
    assert images.shape == (53, 3, 64, 84)
    assert images.flags.c_contiguous
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert demo.files[0].stored_observation_shapes == ((64, 84, 3),)
    # Same values as the record stores, moved from (H, W, C) to (C, H, W).
    first = _raw_records(demos / "ExpertGridWorld.demo")[0]
    stored = np.array(first.agent_info.observations[0].float_data.data, np.float32)
    np.testing.assert_array_equal(images[0], stored.reshape(64, 84, 3).transpose(2, 0, 1))
    masks = demo.action_masks
    assert masks is not None and masks.shape == (53, 5) and masks.dtype == np.bool_
    assert masks.any() and not masks.all(axis=1).any()
    assert len(np.unique(demo.agent_ids)) == 14


def test_png_observations(demos: Path) -> None:
    for name, channel_last in (
        ("test_discrete_visual.demo", True),
        ("test_hybrid_visual.demo", False),
    ):
        demo = load_demonstration(demos / name)
        images = demo.observations[0]
        assert images.min() >= 0.0 and images.max() <= 1.0
        assert images.std() > 0.01
        assert demo.files[0].channel_last[0] == channel_last
    hybrid = load_demonstration(demos / "test_hybrid_visual.demo")
    assert np.abs(hybrid.continuous_actions).max() <= 1.0
    assert set(np.unique(hybrid.discrete_actions)) <= {0, 1}
    assert hybrid.action_recorded.all()
    visual = load_demonstration(demos / "test_discrete_visual.demo")
    assert visual.observations[1].shape == (38, 0)


def test_transitions_pair_with_next_record(demos: Path) -> None:
    demo = load_demonstration(demos / "ExpertBasic.demo")
    tr = demo.transitions()
    np.testing.assert_array_equal(tr.indices, np.arange(72))
    np.testing.assert_array_equal(tr.rewards, demo.rewards[1:])
    np.testing.assert_array_equal(tr.dones, demo.dones[1:])
    np.testing.assert_array_equal(tr.observations[0], demo.observations[0][:72])
    np.testing.assert_array_equal(tr.discrete_actions, demo.discrete_actions[:72])
    step = next(iter(tr))
    assert step.record == 0 and step.reward == pytest.approx(demo.rewards[1])
    assert step.action_mask is None


def test_directory_concatenates_without_cross_file_pairs(demos: Path) -> None:
    demo = load_demonstration(demos / "test_demo_dir")
    files = sorted((demos / "test_demo_dir").glob("*.demo"))
    assert [f.path for f in demo.files] == files
    assert [(f.start, f.stop) for f in demo.files] == [(0, 25), (25, 50), (50, 75)]
    single = load_demonstration(files[1])
    np.testing.assert_array_equal(demo.observations[0][25:50], single.observations[0])
    tr = demo.transitions()
    assert 24 not in tr.indices and 49 not in tr.indices and len(tr) == 72


def test_directory_with_mixed_specs(demos: Path, tmp_path: Path) -> None:
    shutil.copy(demos / "ExpertBasic.demo", tmp_path / "a.demo")
    shutil.copy(demos / "Expert3DBall.demo", tmp_path / "b.demo")
    with pytest.raises(UnityDemoException, match=r"different behaviors") as err:
        load_demonstration(tmp_path)
    assert "a.demo" in str(err.value) and "b.demo" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Broken inputs


def test_missing_path(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "Expert.demo"
    with pytest.raises(UnityDemoException, match="does not exist") as err:
        load_demonstration(missing)
    assert str(missing) in str(err.value)


def test_not_a_demo_suffix_and_empty_directory(tmp_path: Path) -> None:
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(UnityDemoException, match=r"is not a \.demo file"):
        load_demonstration(other)
    with pytest.raises(UnityDemoException, match=r"holds no \.demo file"):
        load_demonstration(tmp_path)


def _walk(data: bytes) -> list[tuple[int, int]]:
    """(offset, end) of the brain record and every record after it (test's own reader)."""

    def varint(pos: int) -> tuple[int, int]:
        value = shift = 0
        while True:
            byte = data[pos]
            value |= (byte & 0x7F) << shift
            pos += 1
            if byte < 0x80:
                return value, pos
            shift += 7

    out = []
    pos = 33
    steps = DemonstrationMetaProto.FromString(data[1 : 1 + data[0]]).number_steps
    while len(out) < steps + 1:
        length, body = varint(pos)
        out.append((pos, body + length))
        pos = body + length
    return out


def _raw_records(path: Path) -> list[AgentInfoActionPairProto]:
    data = path.read_bytes()
    out = []
    for start, end in _walk(data)[1:]:
        body = start + 1
        while data[body - 1] >= 0x80:
            body += 1
        out.append(AgentInfoActionPairProto.FromString(data[body:end]))
    return out


def test_truncated_mid_record(demos: Path, tmp_path: Path) -> None:
    data = (demos / "ExpertBasic.demo").read_bytes()
    records = _walk(data)
    start, end = records[41]  # record 40 (index 0 is the brain parameters)
    cut = tmp_path / "cut.demo"
    cut.write_bytes(data[: (start + end) // 2])
    with pytest.raises(UnityDemoException, match="truncated") as err:
        load_demonstration(cut)
    assert f"record 40 of 73, at byte offset {start}," in str(err.value)
    assert str(cut) in str(err.value)


def test_truncated_between_records_and_in_header(demos: Path, tmp_path: Path) -> None:
    data = (demos / "ExpertBasic.demo").read_bytes()
    cut = tmp_path / "cut.demo"
    cut.write_bytes(data[: _walk(data)[10][0]])
    with pytest.raises(UnityDemoException, match=r"after 9 of them.*truncated"):
        load_demonstration(cut)
    cut.write_bytes(data[:40])
    with pytest.raises(UnityDemoException, match=r"brain parameters.*truncated"):
        load_demonstration(cut)
    cut.write_bytes(data[:20])
    with pytest.raises(UnityDemoException, match="truncated"):
        load_demonstration(cut)
    cut.write_bytes(b"")
    with pytest.raises(UnityDemoException, match="empty"):
        load_demonstration(cut)


@pytest.mark.parametrize("seed", range(20))
def test_random_bytes(tmp_path: Path, seed: int) -> None:
    junk = tmp_path / "junk.demo"
    junk.write_bytes(np.random.default_rng(seed).bytes(5000))
    with pytest.raises(UnityDemoException, match="not an ML-Agents demonstration"):
        load_demonstration(junk)


def test_png_renamed_to_demo(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 200, np.uint8)).save(buffer, format="PNG")
    fake = tmp_path / "picture.demo"
    fake.write_bytes(buffer.getvalue())
    with pytest.raises(UnityDemoException, match="not an ML-Agents demonstration") as err:
        load_demonstration(fake)
    assert str(fake) in str(err.value)


def test_corrupt_record(demos: Path, tmp_path: Path) -> None:
    data = bytearray((demos / "ExpertBasic.demo").read_bytes())
    start, end = _walk(bytes(data))[6]  # record 5
    data[start + 2 : end] = b"\xff" * (end - start - 2)
    bad = tmp_path / "bad.demo"
    bad.write_bytes(bytes(data))
    with pytest.raises(UnityDemoException, match="not an ML-Agents demonstration") as err:
        load_demonstration(bad)
    assert f"record 5 (byte offset {start})" in str(err.value)


# ---------------------------------------------------------------------------------------------
# Synthetic files


def _delimited(payload: bytes) -> bytes:
    out = bytearray()
    n = len(payload)
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out) + payload


def _write_demo(
    path: Path,
    records: list[bytes],
    *,
    number_steps: int | None = None,
    api_version: int = 1,
    brain: BrainParametersProto | None = None,
) -> Path:
    meta = DemonstrationMetaProto(
        api_version=api_version,
        demonstration_name="synthetic",
        number_steps=len(records) if number_steps is None else number_steps,
        number_episodes=1,
    )
    head = _delimited(meta.SerializeToString()).ljust(33, b"\0")
    if brain is None:
        brain = BrainParametersProto(brain_name="Synthetic")
        brain.action_spec.num_continuous_actions = 2
    path.write_bytes(
        head + _delimited(brain.SerializeToString()) + b"".join(_delimited(r) for r in records)
    )
    return path


def _record(values: list[float], reward: float = 0.0, done: bool = False) -> bytes:
    info = AgentInfoProto(reward=reward, done=done, id=3)
    info.observations.add(shape=[len(values)]).float_data.data.extend(values)
    action = AgentActionProto(continuous_actions=[0.5, -0.5])
    return AgentInfoActionPairProto(agent_info=info, action_info=action).SerializeToString()


def test_synthetic_demo_and_number_steps_limit(tmp_path: Path) -> None:
    records = [_record([i, i + 0.5], reward=i, done=i == 2) for i in range(4)]
    path = _write_demo(tmp_path / "s.demo", records, number_steps=3)
    demo = load_demonstration(path)
    assert isinstance(demo, Demonstration) and len(demo) == 3
    np.testing.assert_array_equal(demo.observations[0], [[0, 0.5], [1, 1.5], [2, 2.5]])
    np.testing.assert_array_equal(demo.rewards, [0, 1, 2])
    np.testing.assert_array_equal(demo.dones, [False, False, True])
    np.testing.assert_array_equal(demo.continuous_actions, [[0.5, -0.5]] * 3)
    assert demo.behavior_name == "Synthetic"


def test_unpacked_floats_are_read(tmp_path: Path) -> None:
    """A writer may legally emit repeated floats unpacked; the reader falls back for them."""
    values = [1.25, -2.5, 3.0]
    unpacked = b"".join(b"\x0d" + struct.pack("<f", v) for v in values)  # field 1, fixed32
    observation = ObservationProto(shape=[3]).SerializeToString() + b"\x22" + _delimited(unpacked)
    info = AgentInfoProto(reward=1.0, id=3).SerializeToString() + b"\x6a" + _delimited(observation)
    action = AgentActionProto(continuous_actions=[0.1, 0.2]).SerializeToString()
    odd = b"\x0a" + _delimited(info) + b"\x12" + _delimited(action)
    path = _write_demo(tmp_path / "u.demo", [_record([0.0, 0.0, 0.0]), odd])
    demo = load_demonstration(path)
    np.testing.assert_array_equal(demo.observations[0], [[0, 0, 0], values])
    np.testing.assert_allclose(demo.continuous_actions[1], [0.1, 0.2])


def test_wrong_observation_size(tmp_path: Path) -> None:
    path = _write_demo(tmp_path / "w.demo", [_record([1.0, 2.0]), _record([1.0, 2.0, 3.0])])
    with pytest.raises(UnityDemoException, match=r"observation 0 of record 1 .*has 3 values"):
        load_demonstration(path)


def test_unsupported_api_version(tmp_path: Path) -> None:
    path = _write_demo(tmp_path / "v.demo", [_record([1.0])], api_version=7)
    with pytest.raises(UnityDemoException, match="api_version 7"):
        load_demonstration(path)


def test_zero_records(tmp_path: Path) -> None:
    path = _write_demo(tmp_path / "z.demo", [], number_steps=0)
    with pytest.raises(UnityDemoException, match="0 recorded steps") as err:
        load_demonstration(path)
    assert str(path) in str(err.value)


def test_legacy_discrete_actions(tmp_path: Path) -> None:
    brain = BrainParametersProto(brain_name="Old", vector_action_size_deprecated=[3, 2])
    records = []
    for i in range(3):
        pair = AgentInfoActionPairProto.FromString(_record([float(i)]))
        pair.action_info.ClearField("continuous_actions")
        pair.action_info.vector_actions_deprecated.extend([2.0, float(i % 2)])
        pair.agent_info.action_mask.extend([False, True, False, True, False])
        records.append(pair.SerializeToString())
    demo = load_demonstration(_write_demo(tmp_path / "l.demo", records, brain=brain))
    assert demo.behavior_spec.action_spec.discrete_branches == (3, 2)
    np.testing.assert_array_equal(demo.discrete_actions, [[2, 0], [2, 1], [2, 0]])
    assert demo.action_masks is not None
    np.testing.assert_array_equal(demo.action_masks[0], [False, True, False, True, False])
