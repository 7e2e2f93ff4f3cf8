#!/bin/sh
# Create a virtual environment with the OFFICIAL ML-Agents Python package (mlagents-envs 1.1.0,
# ML-Agents release 21), for the optional interoperability tests:
#
#   sh bench/mlagents_venv.sh /tmp/mlagents-venv
#   MLAGENTS_PYTHON=/tmp/mlagents-venv/bin/python python -m pytest tests/test_interop_mlagents.py
#
# mlagents-envs 1.1.0 declares Python 3.10.1-3.10.12 only and pins old grpcio/numpy; it runs fine
# on 3.11 with the pins below, so it is installed with --ignore-requires-python --no-deps and its
# real runtime needs are listed by hand (gym, pettingzoo and filelock are only needed by its
# wrappers and registry, not by mlagents_envs.environment, and are left out).
#
# With MLAGENTS_TRAINER=1 (or "trainer" as second argument) it also installs the official
# trainer, mlagents 1.1.0, so that VENV/bin/mlagents-learn works (bench/sac_head_to_head.py):
#
#   MLAGENTS_TRAINER=1 sh bench/mlagents_venv.sh /tmp/mlagents-learn-venv
#   sh bench/mlagents_venv.sh /tmp/mlagents-learn-venv trainer      # the same
#
# mlagents 1.1.0 declares Python >=3.10.1,<=3.10.12 and pins grpcio<=1.48.2, numpy<1.24,
# protobuf<3.21, onnx==1.15.0, cattrs<1.7 and torch>=2.1.1. Choices (same --no-deps recipe):
#   * Python 3.11 stays the interpreter: the only torch allowed here is torch==2.13.0, whose CPU
#     wheel on this machine is built for CPython 3.11 only (any other torch spec would download
#     a multi-GB CUDA build). Python 3.10 would need that download, so it is not used.
#   * cattrs 1.5.0 (the version mlagents 1.1.0 was released against; < 1.7 as pinned) imports
#     and structures mlagents' settings on 3.11; attrs is the current release.
#   * grpcio is left unpinned (1.48.2 has no CPython 3.11 wheel); the gRPC wire protocol is the
#     same, and mlagents-envs already runs with it above.
#   * onnx==1.15.0 as pinned (has a 3.11 wheel); it is only used when exporting .onnx models.
#   * numpy 1.23.5 and protobuf 3.20.3 as for mlagents-envs; setuptools >=77.0.3 (torch 2.13
#     requires it) and <81, because mlagents imports pkg_resources, which later releases drop;
#     tensorboard, h5py, six, huggingface-hub and Pillow at versions that accept the pins.
#
# Idempotent: an existing venv at PATH that already imports mlagents_envs (and, for the trainer,
# runs mlagents-learn --help) is left as it is.
# Interpreter: $PYTHON (default python3.11; python3.10 works too for mlagents-envs alone).
set -eu

VENV="${1:-/tmp/mlagents-venv}"
PYTHON="${PYTHON:-python3.11}"
TRAINER="${MLAGENTS_TRAINER:-0}"
if [ "${2:-}" = "trainer" ]; then
    TRAINER=1
fi

check() {
    "$VENV/bin/python" - <<'PYEOF'
from mlagents_envs.environment import UnityEnvironment  # noqa: F401
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel  # noqa: F401
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel  # noqa: F401
from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel  # noqa: F401
import mlagents_envs
print("mlagents_envs", mlagents_envs.__version__)
PYEOF
}

check_trainer() {
    "$VENV/bin/mlagents-learn" --help >/dev/null
    "$VENV/bin/python" - <<'PYEOF'
import mlagents.trainers
from mlagents.trainers.learn import run_cli  # noqa: F401
from mlagents.trainers.sac.trainer import SACTrainer  # noqa: F401
import torch
import torch.onnx
assert torch.onnx.export.__kwdefaults__["dynamo"] is False, "ONNX export hook missing"
print("mlagents", mlagents.trainers.__version__, "torch", torch.__version__)
PYEOF
}

if [ -x "$VENV/bin/python" ] && check >/dev/null 2>&1; then
    if [ "$TRAINER" != "1" ]; then
        echo "$VENV already has the official mlagents_envs:"
        check
        exit 0
    fi
    if check_trainer >/dev/null 2>&1; then
        echo "$VENV already has the official mlagents_envs and mlagents-learn:"
        check
        check_trainer
        exit 0
    fi
else
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install --ignore-requires-python --no-deps \
        "mlagents-envs==1.1.0" \
        "numpy==1.23.5" \
        "protobuf==3.20.3" \
        "setuptools<70" \
        grpcio \
        typing_extensions \
        Pillow \
        pyyaml \
        cloudpickle
    check
fi

if [ "$TRAINER" = "1" ]; then
    # The packages whose pins do not hold on 3.11 without their own dependency resolution...
    "$VENV/bin/python" -m pip install --ignore-requires-python --no-deps \
        "mlagents==1.1.0" \
        "cattrs==1.5.0" \
        "onnx==1.15.0"
    # ...then the rest with their dependencies, numpy and protobuf held at mlagents' pins.
    "$VENV/bin/python" -m pip install \
        "torch==2.13.0" \
        "numpy==1.23.5" \
        "protobuf==3.20.3" \
        "setuptools>=77.0.3,<81" \
        attrs \
        h5py \
        six \
        huggingface-hub \
        tensorboard
    # torch >= 2.9 exports ONNX with its dynamo exporter by default, which needs onnxscript and
    # opset >= 18; mlagents 1.1.0 calls torch.onnx.export(..., opset_version=9) as written for
    # the TorchScript exporter (the default before 2.9, still in torch 2.13 as dynamo=False), so
    # every checkpoint would fail. A .pth hook restores that default when torch.onnx is imported.
    SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    cat >"$SITE/_mlagents_onnx_compat.py" <<'PYEOF'
"""Written by bench/mlagents_venv.sh: torch.onnx.export defaults to dynamo=False (as torch < 2.9
did), the exporter mlagents 1.1.0 was written for. Applied lazily, when torch.onnx is imported."""

import importlib.abc
import importlib.machinery
import sys


class _TorchOnnxFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path, target=None):
        if fullname != "torch.onnx":
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.loader is None:
            return spec
        exec_module = spec.loader.exec_module

        def exec_and_patch(module):
            exec_module(module)
            module.export.__kwdefaults__["dynamo"] = False

        spec.loader.exec_module = exec_and_patch
        return spec


sys.meta_path.insert(0, _TorchOnnxFinder())
PYEOF
    echo "import _mlagents_onnx_compat" >"$SITE/_mlagents_onnx_compat.pth"
    check_trainer
    echo "Done. Use: $VENV/bin/mlagents-learn"
else
    echo "Done. Use: MLAGENTS_PYTHON=$VENV/bin/python"
fi
