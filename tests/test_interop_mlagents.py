"""Interoperability with the OFFICIAL ML-Agents Python package (``mlagents-envs`` 1.1.0).

Optional: these tests run only when ``MLAGENTS_PYTHON`` names a Python interpreter that can
``import mlagents_envs`` (``sh bench/mlagents_venv.sh /tmp/mlagents-venv`` creates one; then
``MLAGENTS_PYTHON=/tmp/mlagents-venv/bin/python python -m pytest tests/test_interop_mlagents.py``).
The official package runs in its own interpreter, as a subprocess; nothing of it is imported here.

a) Same bytes from both Python sides: a recording fake player (this process, playing the Unity
   side) is driven first by the official ``UnityEnvironment`` and then by ours, with the same
   script, side-channel calls and actions. Every message Python answers (handshake, reset, steps,
   close) must be byte-identical after deterministic serialisation, except for these legitimate
   differences, each normalised explicitly below:
     * ``rl_initialization_input.package_version``: "1.1.0" (official) vs ``unity_gym.__version__``;
     * the training-analytics side-channel payload: its ``mlagents_envs_version`` (and the Python
       version, in case the two interpreters differ) name the sending package;
     * ``AgentActionProto.vector_actions_deprecated``: the official package always fills it; ours
       fills it only for players without the ``hybridActions`` capability (API < 1.3), the only
       players that read it. A second test with such a player compares without this normalisation.
   Both sides must also decode the same player output into equal arrays (observations, rewards,
   agent ids, action masks, interrupted flags, group ids/rewards) and equal behavior specs,
   bit for bit (averaged PNG channels and masks of steps without decisions included).
b) The official package drives our built-in players through a launcher that behaves like a Unity
   build (``--mlagents-port``, ``-nographics -batchmode``, ``-logFile``), with its own engine
   configuration, environment parameters and stats side channels.

Every process is started in its own session and killed by pid at teardown (players are found by
their ``--mlagents-port``); the fake player talks to loopback only (the official package itself
listens on all interfaces, ``[::]:port``, as it always does).
"""

from __future__ import annotations

import contextlib
import difflib
import importlib.util
import io
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from google.protobuf import text_format
from google.protobuf.any_pb2 import Any as AnyProto
from PIL import Image

import unity_gym
from tests.conftest import REPO, free_port
from tests.scripted_player import EXCHANGE
from unity_gym.communicator_objects.agent_info_pb2 import AgentInfoProto
from unity_gym.communicator_objects.brain_parameters_pb2 import (
    ActionSpecProto,
    BrainParametersProto,
)
from unity_gym.communicator_objects.capabilities_pb2 import UnityRLCapabilitiesProto
from unity_gym.communicator_objects.header_pb2 import HeaderProto
from unity_gym.communicator_objects.observation_pb2 import PNG, ObservationProto
from unity_gym.communicator_objects.training_analytics_pb2 import TrainingEnvironmentInitialized
from unity_gym.communicator_objects.unity_message_pb2 import UnityMessageProto
from unity_gym.communicator_objects.unity_output_pb2 import UnityOutputProto
from unity_gym.communicator_objects.unity_rl_initialization_output_pb2 import (
    UnityRLInitializationOutputProto,
)
from unity_gym.communicator_objects.unity_rl_output_pb2 import UnityRLOutputProto

ENV_VAR = "MLAGENTS_PYTHON"
RECIPE = "bench/mlagents_venv.sh"
OFFICIAL_VERSION = "1.1.0"
ANALYTICS_CHANNEL = uuid.UUID("b664a4a9-d86f-5a5f-95cb-e8353a7e8356")
STATS_CHANNEL = uuid.UUID("a1d8f7b7-cec8-50f9-b78b-d3e165a78520")
ENGINE_CHANNEL = uuid.UUID("e951342c-4f7e-11ea-b238-784f4387d1f7")
PARAMETERS_CHANNEL = uuid.UUID("534c891e-810f-11ea-a9d0-822485860400")
NORMALISED = "<normalised>"
DRIVER_TIMEOUT_S = 120

BALL = "Ball?team=0"
GRID = "Grid?team=0"
LATE = "Late?team=0"


# -- the official interpreter ----------------------------------------------------------------


@pytest.fixture(scope="session")
def official_python() -> str:
    """Path of a Python that imports the official ``mlagents_envs``; skips the test otherwise."""
    how = f"create one with `sh {RECIPE} /tmp/mlagents-venv`"
    python = os.environ.get(ENV_VAR)
    if not python:
        pytest.skip(
            f"interop with the official ML-Agents package: set {ENV_VAR} to a Python that can "
            f"`import mlagents_envs` ({how})"
        )
    try:
        probe = subprocess.run(
            [python, "-c", "import mlagents_envs.environment, mlagents_envs; "
             "print(mlagents_envs.__version__)"],
            capture_output=True, text=True, timeout=120, env=_official_env(), cwd="/",
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        pytest.skip(f"{ENV_VAR}={python} cannot be run ({how}): {err}")
    if probe.returncode != 0:
        pytest.skip(
            f"{ENV_VAR}={python} cannot import mlagents_envs ({how}): "
            f"{probe.stderr.strip().splitlines()[-1:] or probe.returncode}"
        )
    version = probe.stdout.strip()
    if version != OFFICIAL_VERSION:
        pytest.skip(f"{ENV_VAR} has mlagents_envs {version}; these tests pin {OFFICIAL_VERSION}")
    return python


def _official_env() -> dict[str, str]:
    """The environment for the official interpreter: nothing of this repository on its path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def _our_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


# -- process bookkeeping -----------------------------------------------------------------------


@dataclass
class Processes:
    """Every process a test starts, killed (by pid) at teardown even when the test fails."""

    popens: list[subprocess.Popen[bytes]] = field(default_factory=list)
    pid_files: list[Path] = field(default_factory=list)
    player_ports: list[int] = field(default_factory=list)

    def spawn(self, argv: Sequence[str], log: Path, **kwargs: Any) -> subprocess.Popen[bytes]:
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                list(argv), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs
            )
        self.popens.append(proc)
        return proc

    def player_pids(self) -> list[int]:
        """Players recorded by our launchers, and any player still serving one of our ports."""
        pids = []
        for pid_file in self.pid_files:
            if pid_file.exists():
                pids += [int(line) for line in pid_file.read_text().split()]
        for port in self.player_ports:
            pids += [pid for pid in _players_on_port(port) if pid not in pids]
        return pids

    def cleanup(self) -> None:
        for proc in self.popens:
            if proc.poll() is None:
                proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
        for pid in self.player_pids():
            if _is_our_player(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def _processes() -> Iterator[Processes]:
    procs = Processes()
    try:
        yield procs
    finally:
        procs.cleanup()


@pytest.fixture
def processes() -> Iterator[Processes]:
    with _processes() as procs:
        yield procs


def _is_our_player(pid: int) -> bool:
    """True while ``pid`` is a running (not zombie) built-in player process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[1].split()[0]
    return state != "Z" and b"unity_gym.players" in cmdline


def _players_on_port(port: int) -> list[int]:
    """Built-in players started with ``--mlagents-port PORT`` (found in /proc)."""
    needle = b"\0--mlagents-port\0" + str(port).encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and _is_our_player(int(entry.name)):
            with contextlib.suppress(OSError):
                if needle in b"\0" + (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _wait_gone(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _is_our_player(pid):
            return True
        time.sleep(0.05)
    return False


def _port_is_free(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::")):
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                probe.bind((host, port))
            except OSError as err:
                if family == socket.AF_INET6 and err.errno in (97, 99):  # no IPv6 here
                    continue
                return False
    return True


def _run_driver(
    processes: Processes, python: str, source: str, config: dict[str, Any], tmp: Path, env: dict
) -> subprocess.Popen[bytes]:
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "driver.py").write_text(source)
    (tmp / "config.json").write_text(json.dumps(config))
    return processes.spawn(
        [python, str(tmp / "driver.py"), str(tmp / "config.json")],
        tmp / "driver.log",
        cwd=str(tmp),
        env=env,
    )


def _finish(proc: subprocess.Popen[bytes], log: Path, timeout: float = DRIVER_TIMEOUT_S) -> None:
    try:
        code = proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
        pytest.fail(f"driver timed out after {timeout} s; its output:\n{_tail(log)}")
    assert code == 0, f"driver exited with {code}; its output:\n{_tail(log)}"


def _tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return "(no output)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


# -- a) the recording fake player ----------------------------------------------------------


class RecordingPlayer(threading.Thread):
    """Plays the Unity side: sends each scripted message and records Python's raw answers."""

    def __init__(self, port: int, script: Sequence[UnityMessageProto]) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.script = [m.SerializeToString() for m in script]
        self.answers: list[bytes] = []
        self.error: Exception | None = None

    def run(self) -> None:
        channel = grpc.insecure_channel(
            f"127.0.0.1:{self.port}",
            options=[
                ("grpc.initial_reconnect_backoff_ms", 50),
                ("grpc.max_reconnect_backoff_ms", 100),
            ],
        )
        call = channel.unary_unary(EXCHANGE)  # raw bytes both ways
        try:
            for message in self.script:
                self.answers.append(call(message, wait_for_ready=True, timeout=60))
        except grpc.RpcError as err:
            self.error = err
        finally:
            channel.close()


def _png(pixels: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def _vector(values: Sequence[float], name: str, obs_type: int = 0) -> ObservationProto:
    return ObservationProto(
        shape=[len(values)],
        float_data=ObservationProto.FloatData(data=values),
        dimension_properties=[1],
        observation_type=obs_type,
        name=name,
    )


def _visual(
    png: bytes, shape: Sequence[int], name: str, mapping: Sequence[int] = ()
) -> ObservationProto:
    return ObservationProto(
        shape=list(shape),
        compression_type=PNG,
        compressed_data=png,
        compressed_channel_mapping=list(mapping),
        dimension_properties=[1, 2, 2],
        name=name,
    )


class Scene:
    """Deterministic agent infos for three behaviors (all values rounded through float32)."""

    def __init__(self) -> None:
        self.rng = np.random.default_rng(2024)

    def floats(self, n: int, scale: float = 1.0) -> list[float]:
        return (self.rng.normal(size=n) * scale).astype(np.float32).tolist()

    def ball(self, agent_id: int, **kw: Any) -> AgentInfoProto:
        """3DBall-like: 8 floats, 2 continuous actions."""
        return AgentInfoProto(
            id=agent_id, observations=[_vector(self.floats(8), "VectorSensor_size8")], **kw
        )

    def grid(self, agent_id: int, mask: Sequence[bool] = (), **kw: Any) -> AgentInfoProto:
        """Visual (RGB, grayscale, stacked with a channel mapping) + goal vector; 2 branches."""
        rgb = self.rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
        gray = self.rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8)
        frames = [self.rng.integers(0, 256, size=(8, 10, 3), dtype=np.uint8) for _ in range(2)]
        return AgentInfoProto(
            id=agent_id,
            action_mask=list(mask),
            observations=[
                _visual(_png(rgb), (3, 8, 10), "CameraSensor"),
                _visual(_png(gray), (1, 8, 10), "GrayCamera"),
                _visual(
                    b"".join(_png(f) for f in frames), (2, 8, 10), "StackedGray", [0, 0, 0, 1, 1, 1]
                ),
                _vector(self.floats(4), "Goal", obs_type=1),
            ],
            **kw,
        )

    def late(self, agent_id: int, **kw: Any) -> AgentInfoProto:
        """A behavior that appears mid-run: rank-2 variable-length obs, hybrid actions."""
        obs = ObservationProto(
            shape=[3, 4],
            float_data=ObservationProto.FloatData(data=self.floats(12, scale=100.0)),
            dimension_properties=[4, 1],
            name="BufferSensor",
        )
        return AgentInfoProto(id=agent_id, observations=[obs], **kw)


BRAINS = {
    BALL: BrainParametersProto(
        brain_name=BALL, is_training=True, action_spec=ActionSpecProto(num_continuous_actions=2)
    ),
    GRID: BrainParametersProto(
        brain_name=GRID,
        is_training=True,
        action_spec=ActionSpecProto(num_discrete_actions=2, discrete_branch_sizes=[3, 2]),
    ),
    LATE: BrainParametersProto(
        brain_name=LATE,
        is_training=True,
        action_spec=ActionSpecProto(
            num_continuous_actions=1, num_discrete_actions=1, discrete_branch_sizes=[4]
        ),
    ),
}


def _output(
    infos: dict[str, list[AgentInfoProto]], brains: Sequence[str] = (), side_channel: bytes = b""
) -> UnityMessageProto:
    return UnityMessageProto(
        header=HeaderProto(status=200),
        unity_output=UnityOutputProto(
            rl_output=UnityRLOutputProto(
                agentInfos={
                    name: UnityRLOutputProto.ListAgentInfoProto(value=v)
                    for name, v in infos.items()
                },
                side_channel=side_channel,
            ),
            rl_initialization_output=UnityRLInitializationOutputProto(
                brain_parameters=[BRAINS[b] for b in brains]
            ),
        ),
    )


def _stat(key: str, value: float, method: int) -> bytes:
    encoded = key.encode("ascii")
    payload = struct.pack("<i", len(encoded)) + encoded + struct.pack("<fi", value, method)
    return STATS_CHANNEL.bytes_le + struct.pack("<i", len(payload)) + payload


def build_script(hybrid_actions: bool) -> list[UnityMessageProto]:
    """init, empty, then outputs for reset and three steps (answers: 6, the last a close)."""
    s = Scene()
    caps = UnityRLCapabilitiesProto(
        baseRLCapabilities=True,
        concatenatedPngObservations=True,
        compressedChannelMapping=True,
        hybridActions=hybrid_actions,
        trainingAnalytics=True,
        variableLengthObservation=True,
        multiAgentGroups=True,
    )
    init = UnityMessageProto(
        header=HeaderProto(status=200),
        unity_output=UnityOutputProto(
            rl_initialization_output=UnityRLInitializationOutputProto(
                name="InteropPlayer",
                communication_version="1.5.0",
                package_version="3.0.0",
                capabilities=caps,
            )
        ),
    )
    reset = _output(
        {
            BALL: [s.ball(0, reward=0.0), s.ball(1), s.ball(2)],
            GRID: [s.grid(10, mask=[False, True, False, False, True], group_id=1), s.grid(11)],
        },
        brains=[BALL, GRID],
    )
    step1 = _output(
        {
            BALL: [
                s.ball(0, reward=-1.0, done=True, max_step_reached=True),
                s.ball(1, reward=0.1),
                s.ball(2, reward=0.1),
                s.ball(3, reward=0.0),
            ],
            GRID: [
                s.grid(10, mask=[True, False, False, True, False], group_id=1, group_reward=0.5),
                s.grid(11, reward=-1.0, done=True, group_id=2, group_reward=-0.25),
            ],
        },
        side_channel=_stat("Env/Score", 1.5, 0) + _stat("Env/Count", 3.0, 2),
    )
    step2 = _output(
        {
            BALL: [s.ball(1, reward=0.1), s.ball(2, reward=0.1), s.ball(3, reward=0.1)],
            GRID: [s.grid(10, reward=1.0, done=True, max_step_reached=True, group_id=1)],
            LATE: [s.late(7, reward=0.25)],
        },
        brains=[LATE],
    )
    step3 = _output(
        {
            BALL: [s.ball(1, reward=0.1), s.ball(2, reward=0.1), s.ball(3, reward=0.1)],
            LATE: [s.late(7, reward=0.5)],
        }
    )
    return [init, UnityMessageProto(header=HeaderProto(status=200)), reset, step1, step2, step3]


# Actions per step (step 0 answers the reset output). Values that float32 cannot hold exactly,
# out-of-range continuous values and every discrete branch are used on purpose.
STEP_ACTIONS: list[dict[str, dict[str, list[list[float]] | list[list[int]]]]] = [
    {
        BALL: {"continuous": [[0.1, -0.7], [1e-8, 3.5], [-1.0, 1.0 / 3.0]]},
        GRID: {"discrete": [[2, 1], [0, 0]]},
    },
    {GRID: {"discrete": [[1, 1]]}},  # Ball is set agent by agent, see AGENT_ACTIONS
    {
        BALL: {"continuous": [[0.25, -0.25], [123.456, -1e-3], [0.0, -0.0]]},
        LATE: {"continuous": [[0.3]], "discrete": [[3]]},
    },
]
AGENT_ACTIONS: list[list[tuple[str, int, dict[str, list[list[float]]]]]] = [
    [],
    [(BALL, 3, {"continuous": [[0.9, -0.9]]}), (BALL, 1, {"continuous": [[0.5, 0.6]]})],
    [],
]


# The same driver runs in the official interpreter and in ours; only the package differs.
SCRIPTED_DRIVER = r"""
import importlib, json, os, sys
import numpy as np

cfg = json.load(open(sys.argv[1]))
pkg = cfg["package"]
environment = importlib.import_module(pkg + ".environment")
ActionTuple = importlib.import_module(pkg + ".base_env").ActionTuple
channels = []
if cfg["side_channels"]:
    def channel(module, cls):
        return getattr(importlib.import_module(pkg + ".side_channel." + module), cls)()
    engine = channel("engine_configuration_channel", "EngineConfigurationChannel")
    params = channel("environment_parameters_channel", "EnvironmentParametersChannel")
    stats = channel("stats_side_channel", "StatsSideChannel")
    channels = [engine, params, stats]

arrays = {}
meta = {
    "package_version": importlib.import_module(pkg).__version__,
    "python_version": "%d.%d.%d" % tuple(sys.version_info[:3]),
    "phases": {},
}


def actions(spec):
    kw = {}
    if "continuous" in spec:
        kw["continuous"] = np.array(spec["continuous"], dtype=np.float32)
    if "discrete" in spec:
        kw["discrete"] = np.array(spec["discrete"], dtype=np.int32)
    return ActionTuple(**kw)


def dump(phase):
    info = {}
    for b, name in enumerate(sorted(env.behavior_specs)):
        spec = env.behavior_specs[name]
        decision, terminal = env.get_steps(name)
        info[name] = {
            "observation_specs": [
                [[int(d) for d in o.shape], [int(p) for p in o.dimension_property],
                 int(o.observation_type.value), o.name]
                for o in spec.observation_specs
            ],
            "action_spec": [spec.action_spec.continuous_size,
                            [int(x) for x in spec.action_spec.discrete_branches]],
            "lengths": [len(decision), len(terminal)],
            "agent_id_to_index": sorted(
                (int(k), int(v)) for k, v in decision.agent_id_to_index.items()
            ),
            "action_mask": None if decision.action_mask is None else len(decision.action_mask),
        }
        p = "%s.%d." % (phase, b)
        for kind, steps in (("decision", decision), ("terminal", terminal)):
            for i, o in enumerate(steps.obs):
                arrays[p + kind + ".obs%d" % i] = o
            for f in ("reward", "agent_id", "group_id", "group_reward"):
                arrays[p + kind + "." + f] = np.asarray(getattr(steps, f))
        arrays[p + "terminal.interrupted"] = np.asarray(terminal.interrupted)
        for j, m in enumerate(decision.action_mask or []):
            arrays[p + "decision.action_mask%d" % j] = m
    meta["phases"][phase] = info


def act(step):
    for name, spec in cfg["actions"][step].items():
        env.set_actions(name, actions(spec))
    for name, agent_id, spec in cfg["agent_actions"][step]:
        env.set_action_for_agent(name, agent_id, actions(spec))


env = environment.UnityEnvironment(
    file_name=None, base_port=cfg["port"], seed=cfg["seed"], num_areas=cfg["num_areas"],
    timeout_wait=60, side_channels=channels or None,
)
dump("init")
if channels:
    engine.set_configuration_parameters(
        width=84, height=64, quality_level=1, time_scale=20.0, target_frame_rate=-1,
        capture_frame_rate=60,
    )
    params.set_float_parameter("gravity", -9.81)
    params.set_multirangeuniform_sampler_parameters("scale", [(0.5, 1.0), (1.5, 2.25)], 7)
env.reset()
dump("reset")
for step in range(3):
    act(step)
    if channels and step == 1:
        params.set_uniform_sampler_parameters("mass", 0.5, 2.0, 11)
        params.set_gaussian_sampler_parameters("size", 1.0, 0.1, 12)
    env.step()
    dump("step%d" % (step + 1))
    if channels and step == 0:
        meta["stats"] = {
            k: [[float(v), int(m.value)] for v, m in values]
            for k, values in sorted(stats.get_and_reset_stats().items())
        }
env.close()
np.savez(os.path.join(cfg["out"], "arrays.npz"), **arrays)
with open(os.path.join(cfg["out"], "meta.json"), "w") as f:
    json.dump(meta, f, indent=1)
"""


@dataclass
class Run:
    answers: list[bytes]
    meta: dict[str, Any]
    arrays: dict[str, np.ndarray]


def _drive_scripted(
    processes: Processes,
    python: str,
    package: str,
    tmp: Path,
    *,
    hybrid_actions: bool,
    side_channels: bool,
) -> Run:
    port = free_port()
    player = RecordingPlayer(port, build_script(hybrid_actions))
    player.start()
    config = {
        "package": package,
        "port": port,
        "seed": 1234,
        "num_areas": 3,
        "side_channels": side_channels,
        "actions": STEP_ACTIONS,
        "agent_actions": AGENT_ACTIONS,
        "out": str(tmp),
    }
    env = _official_env() if package == "mlagents_envs" else _our_env()
    proc = _run_driver(processes, python, SCRIPTED_DRIVER, config, tmp, env)
    _finish(proc, tmp / "driver.log")
    player.join(30)
    assert not player.is_alive(), "the fake player is still waiting for an answer"
    assert player.error is None, f"{package}: {player.error}\n{_tail(tmp / 'driver.log')}"
    assert _port_is_free(port), f"{package} left port {port} bound after close()"
    with np.load(tmp / "arrays.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return Run(player.answers, json.loads((tmp / "meta.json").read_text()), arrays)


# -- normalisation of the legitimate differences ---------------------------------------------


def _split_side_channel(data: bytes) -> list[tuple[uuid.UUID, bytes]]:
    messages, offset = [], 0
    while offset < len(data):
        channel = uuid.UUID(bytes_le=data[offset : offset + 16])
        (length,) = struct.unpack_from("<i", data, offset + 16)
        messages.append((channel, data[offset + 20 : offset + 20 + length]))
        offset += 20 + length
    assert offset == len(data), "side-channel framing overruns the data"
    return messages


def _join_side_channel(messages: Sequence[tuple[uuid.UUID, bytes]]) -> bytes:
    return b"".join(c.bytes_le + struct.pack("<i", len(p)) + p for c, p in messages)


@dataclass
class Normalised:
    messages: list[bytes]  # deterministic serialisation after normalisation
    package_versions: list[str] = field(default_factory=list)
    analytics: list[TrainingEnvironmentInitialized] = field(default_factory=list)
    deprecated_actions: int = 0  # AgentActionProtos whose vector_actions_deprecated was filled


def normalise(answers: Sequence[bytes], *, clear_deprecated: bool) -> Normalised:
    out = Normalised([])
    for raw in answers:
        message = UnityMessageProto.FromString(raw)
        unity_input = message.unity_input
        if unity_input.HasField("rl_initialization_input"):
            init = unity_input.rl_initialization_input
            out.package_versions.append(init.package_version)
            init.package_version = NORMALISED
        if unity_input.HasField("rl_input"):
            rl_input = unity_input.rl_input
            parts = []
            for channel, payload in _split_side_channel(rl_input.side_channel):
                if channel == ANALYTICS_CHANNEL:
                    packed = AnyProto.FromString(payload)
                    info = TrainingEnvironmentInitialized()
                    assert packed.Unpack(info), packed.type_url
                    out.analytics.append(_copy(info))
                    info.mlagents_envs_version = NORMALISED
                    info.python_version = NORMALISED
                    packed.Pack(info)
                    payload = packed.SerializeToString(deterministic=True)
                parts.append((channel, payload))
            rl_input.side_channel = _join_side_channel(parts)
            for actions in rl_input.agent_actions.values():
                for action in actions.value:
                    if len(action.vector_actions_deprecated) == 0:
                        continue
                    out.deprecated_actions += 1
                    expected = list(action.continuous_actions) + [
                        float(d) for d in action.discrete_actions
                    ]
                    assert list(action.vector_actions_deprecated) == expected
                    if clear_deprecated:
                        action.ClearField("vector_actions_deprecated")
        out.messages.append(message.SerializeToString(deterministic=True))
    return out


def _copy(info: TrainingEnvironmentInitialized) -> TrainingEnvironmentInitialized:
    copy = TrainingEnvironmentInitialized()
    copy.CopyFrom(info)
    return copy


PHASES = ["handshake", "reset", "step 1", "step 2", "step 3", "close"]


def _diff(label: str, official: bytes, ours: bytes) -> str:
    a = text_format.MessageToString(UnityMessageProto.FromString(official)).splitlines()
    b = text_format.MessageToString(UnityMessageProto.FromString(ours)).splitlines()
    lines = difflib.unified_diff(a, b, "official", "ours", lineterm="", n=2)
    return (
        f"{label}: bytes differ\n  official {official.hex()}\n  ours     {ours.hex()}\n"
        + "\n".join(lines)
    )


def assert_same_messages(official: Normalised, ours: Normalised) -> None:
    assert len(official.messages) == len(PHASES), len(official.messages)
    assert len(ours.messages) == len(official.messages)
    problems = [
        _diff(label, a, b)
        for label, a, b in zip(PHASES, official.messages, ours.messages, strict=True)
        if a != b
    ]
    assert not problems, "\n\n".join(problems)


def _key_info(meta: dict[str, Any], key: str) -> tuple[str, dict[str, Any], str]:
    """``"step2.1.decision.obs3"`` -> (behavior name, its meta entry, the field)."""
    phase, index, _kind, name = key.split(".")
    behaviors = meta["phases"][phase]
    behavior = sorted(behaviors)[int(index)]
    return behavior, behaviors[behavior], name


def assert_same_decoding(official: Run, ours: Run) -> None:
    """Same specs, lengths and masks layout; equal arrays, dtypes included.

    The official package keeps ``group_id`` as a Python list (an empty one becomes a float64
    array here), so for ``group_id`` only the values are compared.
    """
    our_meta = json.loads(json.dumps(ours.meta))
    our_arrays = dict(ours.arrays)
    assert our_meta["phases"] == official.meta["phases"]
    assert our_meta.get("stats") == official.meta.get("stats")
    assert sorted(our_arrays) == sorted(official.arrays)
    problems = []
    for key in sorted(official.arrays):
        a, b = official.arrays[key], our_arrays[key]
        if a.shape != b.shape:
            problems.append(f"{key}: shape official {a.shape} vs ours {b.shape}")
        elif key.endswith(".group_id"):
            if not np.array_equal(a, b):
                problems.append(f"{key}: official {a.tolist()} vs ours {b.tolist()}")
        elif a.dtype != b.dtype:
            problems.append(f"{key}: dtype official {a.dtype} vs ours {b.dtype}")
        elif not np.array_equal(a, b):
            where = np.argwhere(a != b)
            first = tuple(int(i) for i in where[0])
            problems.append(
                f"{key}: {len(where)} of {a.size} values differ, first at {first}: official "
                f"{a[first]!r} vs ours {b[first]!r} (max |diff| {np.abs(a - b).max():.3g})"
            )
    assert not problems, "\n".join(problems)


# -- a) tests ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scripted_runs(
    official_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, Run]]:
    """Official and our UnityEnvironment against the same script (hybrid-actions player)."""
    tmp = tmp_path_factory.mktemp("scripted")
    with _processes() as procs:
        official = _drive_scripted(
            procs, official_python, "mlagents_envs", tmp / "official",
            hybrid_actions=True, side_channels=True,
        )  # fmt: skip
        ours = _drive_scripted(
            procs, sys.executable, "unity_gym", tmp / "ours",
            hybrid_actions=True, side_channels=True,
        )  # fmt: skip
    yield official, ours


@pytest.mark.protocol
def test_same_bytes_as_official_package(scripted_runs: tuple[Run, Run]) -> None:
    official, ours = scripted_runs
    off = normalise(official.answers, clear_deprecated=True)
    our = normalise(ours.answers, clear_deprecated=True)
    assert_same_messages(off, our)

    # The normalised fields themselves: versions name each package; deprecated actions are
    # filled by the official package only (13 agents answered over the three steps).
    assert off.package_versions == [OFFICIAL_VERSION]
    assert our.package_versions == [unity_gym.__version__]
    assert off.deprecated_actions == 13
    assert our.deprecated_actions == 0
    for norm, run in ((off, official), (our, ours)):
        assert len(norm.analytics) == 1
        (info,) = norm.analytics
        assert info.python_version == run.meta["python_version"]
        assert info.mlagents_envs_version == run.meta["package_version"]
        assert (info.mlagents_version, info.torch_version, info.torch_device_type) == (
            "Custom",
            "Unknown",
            "Unknown",
        )

    # Sanity: what was compared is what the test meant to send.
    close = UnityMessageProto.FromString(ours.answers[-1])
    assert close.header.status == 400 and not close.HasField("unity_input")
    init = UnityMessageProto.FromString(ours.answers[0]).unity_input.rl_initialization_input
    assert (init.seed, init.num_areas, init.communication_version) == (1234, 3, "1.5.0")
    reset = UnityMessageProto.FromString(ours.answers[1]).unity_input.rl_input
    engine, parameters = ENGINE_CHANNEL, PARAMETERS_CHANNEL
    # Queued in side_channels order, the analytics channel last: 5 engine settings, 2 parameters.
    assert [c for c, _ in _split_side_channel(reset.side_channel)] == [engine] * 5 + [
        parameters
    ] * 2 + [ANALYTICS_CHANNEL]


@pytest.mark.protocol
def test_same_decoding_as_official_package(scripted_runs: tuple[Run, Run]) -> None:
    official, ours = scripted_runs
    assert official.meta["stats"] == {"Env/Count": [[3.0, 2]], "Env/Score": [[1.5, 0]]}
    assert_same_decoding(official, ours)


@pytest.mark.protocol
def test_same_bytes_for_a_player_without_hybrid_actions(
    official_python: str, processes: Processes, tmp_path: Path
) -> None:
    """A player older than API 1.3 reads only ``vector_actions_deprecated``: ours fills it too.

    Nothing about actions is normalised here; default side channels only.
    """
    official = _drive_scripted(
        processes, official_python, "mlagents_envs", tmp_path / "official",
        hybrid_actions=False, side_channels=False,
    )  # fmt: skip
    ours = _drive_scripted(
        processes, sys.executable, "unity_gym", tmp_path / "ours",
        hybrid_actions=False, side_channels=False,
    )  # fmt: skip
    off = normalise(official.answers, clear_deprecated=False)
    our = normalise(ours.answers, clear_deprecated=False)
    assert off.deprecated_actions == our.deprecated_actions == 13
    assert_same_messages(off, our)
    assert_same_decoding(official, ours)


# -- b) the official package drives our built-in players ------------------------------------


BUILTIN_DRIVER = r"""
import json, sys, time
import numpy as np
from mlagents_envs.environment import UnityEnvironment
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel
from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel

cfg = json.load(open(sys.argv[1]))
np.random.seed(cfg["seed"])
engine = EngineConfigurationChannel()
params = EnvironmentParametersChannel()
stats = StatsSideChannel()
engine.set_configuration_parameters(time_scale=20.0, target_frame_rate=-1, quality_level=0)
for key, value in cfg["float_parameters"].items():
    params.set_float_parameter(key, value)
env = UnityEnvironment(
    file_name=cfg["file_name"], base_port=cfg["port"], no_graphics=True, seed=cfg["seed"],
    timeout_wait=60, side_channels=[engine, params, stats], log_folder=cfg["log_folder"],
)
result = {"pid": env._process.pid, "behaviors": {}}
env.reset()
for name, spec in env.behavior_specs.items():
    result["behaviors"][name] = {
        "obs_shapes": [list(o.shape) for o in spec.observation_specs],
        "obs_names": [o.name for o in spec.observation_specs],
        "continuous": spec.action_spec.continuous_size,
        "discrete": list(spec.action_spec.discrete_branches),
        "decisions": 0, "terminals": 0, "reward": 0.0, "abs_reward": 0.0,
        "decoded_shapes": set(), "visual_range": [1.0, 0.0], "nonconstant_visual": False,
    }
for step in range(cfg["steps"] + 1):
    for name, spec in env.behavior_specs.items():
        decision, terminal = env.get_steps(name)
        r = result["behaviors"][name]
        r["decisions"] += len(decision)
        r["terminals"] += len(terminal)
        for rewards in (decision.reward, terminal.reward):
            assert np.isfinite(rewards).all()
            r["reward"] += float(rewards.sum())
            r["abs_reward"] += float(np.abs(rewards).sum())
        for obs in decision.obs:
            r["decoded_shapes"].add(tuple(obs.shape[1:]))
            if obs.ndim == 4 and len(obs):
                r["visual_range"] = [min(r["visual_range"][0], float(obs.min())),
                                     max(r["visual_range"][1], float(obs.max()))]
                r["nonconstant_visual"] |= bool(obs.max() > obs.min())
        if step < cfg["steps"] and len(decision):
            env.set_actions(name, spec.action_spec.random_action(len(decision)))
    if step < cfg["steps"]:
        env.step()
for r in result["behaviors"].values():
    r["decoded_shapes"] = sorted(list(s) for s in r["decoded_shapes"])
result["stats"] = {k: [[float(v), int(m.value)] for v, m in vals]
                   for k, vals in stats.get_and_reset_stats().items()}
start = time.monotonic()
process = env._process
env.close()
result["close_s"] = time.monotonic() - start
result["exit_code"] = process.returncode
with open(cfg["out"], "w") as f:
    json.dump(result, f, indent=1)
"""


def _have_players() -> bool:
    try:
        return importlib.util.find_spec("unity_gym.players.__main__") is not None
    except ModuleNotFoundError:
        return False


def _write_launcher(path: Path, name: str, pid_file: Path) -> None:
    """What ``unity-sb3 env-executable NAME PATH`` writes, plus a pid record for cleanup."""
    path.write_text(
        "#!/bin/sh\n"
        f"echo $$ >> '{pid_file}'\n"
        f"PYTHONPATH='{REPO}'${{PYTHONPATH:+:$PYTHONPATH}} "
        f"exec '{sys.executable}' -m unity_gym.players {name} \"$@\"\n"
    )
    path.chmod(0o755)


def _check_3dball(behaviors: dict[str, Any]) -> None:
    (b,) = behaviors.values()
    assert b["obs_shapes"] == [[8]] and (b["continuous"], b["discrete"]) == (2, [])
    assert b["decoded_shapes"] == [[8]]


def _check_basic(behaviors: dict[str, Any]) -> None:
    (b,) = behaviors.values()
    assert b["continuous"] == 0 and b["discrete"] == [3]


def _check_gridworld(behaviors: dict[str, Any]) -> None:
    (b,) = behaviors.values()
    assert [3, 64, 84] in b["obs_shapes"], b["obs_shapes"]
    assert [3, 64, 84] in b["decoded_shapes"], b["decoded_shapes"]
    low, high = b["visual_range"]
    assert 0.0 <= low <= high <= 1.0 and b["nonconstant_visual"]
    assert b["continuous"] == 0 and len(b["discrete"]) == 1


@pytest.mark.parametrize(
    ("name", "float_parameters", "check"),
    [
        ("3DBall", {"mass": 1.0, "scale": 1.0}, _check_3dball),
        ("Basic", {}, _check_basic),
        ("GridWorld", {"gridSize": 5.0}, _check_gridworld),
    ],
)
def test_official_package_drives_builtin_player(
    official_python: str,
    processes: Processes,
    tmp_path: Path,
    name: str,
    float_parameters: dict[str, float],
    check: Callable[[dict[str, Any]], None],
) -> None:
    if not _have_players():
        pytest.skip("unity_gym.players (the built-in players) is not there yet")
    pid_file = tmp_path / "player.pids"
    processes.pid_files.append(pid_file)
    launcher = tmp_path / name
    _write_launcher(launcher, name, pid_file)
    result = _drive_builtin(processes, official_python, tmp_path, launcher, float_parameters, 50)
    assert [result["pid"]] == [int(p) for p in pid_file.read_text().split()]

    behaviors = result["behaviors"]
    assert list(behaviors) == [f"{name}?team=0"], behaviors  # named as Unity names them
    check(behaviors)
    for b in behaviors.values():
        assert b["decisions"] > 0
        assert b["abs_reward"] > 0, "no reward at all in 50 random steps"
    for values in result["stats"].values():
        assert all(method in (0, 1, 2, 3) for _, method in values)


def _cli_has_env_executable() -> bool:
    return any(
        "env-executable" in path.read_text(errors="replace") for path in (REPO / "cli").glob("*.py")
    )


def test_env_executable_launcher_works_for_official_package(
    official_python: str, processes: Processes, tmp_path: Path
) -> None:
    """``unity-sb3 env-executable`` writes a launcher the official package starts like a build."""
    if not _have_players() or not _cli_has_env_executable():
        pytest.skip("unity_gym.players or `unity-sb3 env-executable` is not there yet")
    launcher = tmp_path / "build" / "3DBall"
    launcher.parent.mkdir()
    made = subprocess.run(
        [sys.executable, "-c",
         "import sys; sys.argv = ['unity-sb3', *sys.argv[1:]]; "
         "from cli.main import main; sys.exit(main())",
         "env-executable", "3DBall", str(launcher)],
        cwd=REPO, env=_our_env(), capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stdout + made.stderr
    result = _drive_builtin(processes, official_python, tmp_path, launcher, {}, 5)
    assert result["behaviors"]["3DBall?team=0"]["obs_shapes"] == [[8]]


def _drive_builtin(
    processes: Processes,
    python: str,
    tmp_path: Path,
    launcher: Path,
    float_parameters: dict[str, float],
    steps: int,
) -> dict[str, Any]:
    """Run BUILTIN_DRIVER on ``launcher``; check the player and its port are gone afterwards."""
    port = free_port()
    processes.player_ports.append(port)
    config = {
        "file_name": str(launcher),
        "port": port,
        "seed": 7,
        "steps": steps,
        "float_parameters": float_parameters,
        "log_folder": str(tmp_path),
        "out": str(tmp_path / "result.json"),
    }
    proc = _run_driver(processes, python, BUILTIN_DRIVER, config, tmp_path, _official_env())
    _finish(proc, tmp_path / "driver.log")
    result: dict[str, Any] = json.loads((tmp_path / "result.json").read_text())
    pid = result["pid"]
    assert _wait_gone(pid), f"player {pid} still runs after close()"
    assert result["exit_code"] == 0, f"player exit code {result['exit_code']}"
    assert _players_on_port(port) == []
    assert _port_is_free(port), f"port {port} still bound after close()"
    assert (tmp_path / "Player-0.log").stat().st_size > 0, "no log at the -logFile path"
    return result


# -- c) .demo files we write load identically in the official demo_loader ----------------------

DEMO_LOADER_DRIVER = r"""
import json, sys
import numpy as np
from mlagents.trainers.buffer import BufferKey
from mlagents.trainers.demo_loader import demo_to_buffer, load_demonstration
from mlagents.trainers.trajectory import ObsUtil

config = json.loads(open(sys.argv[1]).read())
spec, pairs, expected = load_demonstration(config["path"])
spec, buffer = demo_to_buffer(config["path"], 1)
arrays = {
    "dones": np.asarray(buffer[BufferKey.DONE], bool),
    "rewards": np.asarray(buffer[BufferKey.ENVIRONMENT_REWARDS], np.float32),
}
for i in range(len(spec.observation_specs)):
    arrays[f"obs_{i}"] = np.asarray(buffer[ObsUtil.get_name_at(i)], np.float32)
if spec.action_spec.continuous_size:
    arrays["continuous"] = np.asarray(buffer[BufferKey.CONTINUOUS_ACTION], np.float32)
if spec.action_spec.discrete_size:
    arrays["discrete"] = np.asarray(buffer[BufferKey.DISCRETE_ACTION], np.int32)
np.savez(config["out"], pairs=len(pairs), expected=expected, **arrays)
"""


def _write_demo_files(tmp_path: Path) -> list[Path]:
    """A recording of a built-in player (PNG camera, masks), and a hybrid, two-sensor one."""
    from cli.record_demo_command import record
    from unity_gym.base_env import (
        ActionSpec,
        BehaviorSpec,
        DimensionProperty,
        ObservationSpec,
        ObservationType,
    )
    from unity_gym.demo import write_demonstration

    grid = tmp_path / "grid.demo"
    record("builtin:GridWorld", grid, 4, heuristic=True, seed=2)
    rng = np.random.default_rng(0)
    n = 12
    camera = ObservationSpec(
        (3, 6, 5),
        (DimensionProperty.NONE, DimensionProperty.TRANSLATIONAL_EQUIVARIANCE,
         DimensionProperty.TRANSLATIONAL_EQUIVARIANCE),
        ObservationType.DEFAULT, "camera",
    )  # fmt: skip
    vector = ObservationSpec((3,), (DimensionProperty.NONE,), ObservationType.DEFAULT, "v")
    hybrid = tmp_path / "hybrid.demo"
    dones = np.zeros(n, bool)
    dones[[4, n - 1]] = True
    write_demonstration(
        hybrid,
        BehaviorSpec([camera, vector], ActionSpec(2, (3,))),
        [rng.integers(0, 256, (n, 3, 6, 5)) / np.float32(255), rng.standard_normal((n, 3))],
        rewards=rng.standard_normal(n).astype(np.float32),
        dones=dones,
        continuous_actions=rng.uniform(-1, 1, (n, 2)).astype(np.float32),
        discrete_actions=rng.integers(0, 3, (n, 1)),
    )
    return [grid, hybrid]


def test_written_demos_load_identically_in_official_loader(
    official_python: str, processes: Processes, tmp_path: Path
) -> None:
    from unity_gym.demo import load_demonstration

    for path in _write_demo_files(tmp_path):
        out = path.with_suffix(".npz")
        config = {"path": str(path), "out": str(out)}
        proc = _run_driver(
            processes, official_python, DEMO_LOADER_DRIVER, config, tmp_path, _official_env()
        )
        _finish(proc, tmp_path / "driver.log")
        official = np.load(out)
        ours = load_demonstration(path)
        transitions = ours.transitions()
        assert int(official["expected"]) == int(official["pairs"]) == len(ours)
        assert len(official["dones"]) == len(transitions) == len(ours) - 1, path.name
        for i, obs in enumerate(transitions.observations):
            np.testing.assert_array_equal(official[f"obs_{i}"], obs, err_msg=f"{path.name} obs")
        np.testing.assert_array_equal(official["rewards"], transitions.rewards)
        np.testing.assert_array_equal(official["dones"], transitions.dones)
        spec = ours.behavior_spec.action_spec
        if spec.continuous_size:
            np.testing.assert_array_equal(official["continuous"], transitions.continuous_actions)
        if spec.discrete_size:
            np.testing.assert_array_equal(official["discrete"], transitions.discrete_actions)
