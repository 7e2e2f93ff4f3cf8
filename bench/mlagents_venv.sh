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
# Idempotent: an existing venv at PATH that already imports mlagents_envs is left as it is.
# Interpreter: $PYTHON (default python3.11; python3.10 works too).
set -eu

VENV="${1:-/tmp/mlagents-venv}"
PYTHON="${PYTHON:-python3.11}"

check() {
    "$VENV/bin/python" - <<'EOF'
from mlagents_envs.environment import UnityEnvironment  # noqa: F401
from mlagents_envs.side_channel.engine_configuration_channel import EngineConfigurationChannel  # noqa: F401
from mlagents_envs.side_channel.environment_parameters_channel import EnvironmentParametersChannel  # noqa: F401
from mlagents_envs.side_channel.stats_side_channel import StatsSideChannel  # noqa: F401
import mlagents_envs
print("mlagents_envs", mlagents_envs.__version__)
EOF
}

if [ -x "$VENV/bin/python" ] && check >/dev/null 2>&1; then
    echo "$VENV already has the official mlagents_envs:"
    check
    exit 0
fi

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
echo "Done. Use: MLAGENTS_PYTHON=$VENV/bin/python"
