"""How many threads torch trains with: mlagents-learn's rule, or the user's choice.

Torch's own default (one thread per core) fights the players for the CPU: the players run on
the same machine, and small networks gain nothing from more threads, so on two cores a
two-thread update runs several times slower than a one-thread one. mlagents-learn therefore
uses half the available cores, at least 1 and at most 4; ``unity-sb3 learn`` does the same
unless ``torch_settings.num_threads`` (``--torch-threads``) says otherwise, or
``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` already chose for torch.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

MAX_DEFAULT_THREADS = 4
THREAD_ENVIRONMENT_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
CGROUP_V2_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def available_cpus() -> int:
    """Cores this process may use: its CPU affinity, capped by a cgroup v2 CPU quota."""
    affinity = getattr(os, "sched_getaffinity", None)  # absent on macOS and Windows
    cpus = len(affinity(0)) if affinity is not None else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_V2_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_threads() -> int:
    """mlagents-learn's choice: half the available cores, between 1 and 4."""
    return max(min(available_cpus() // 2, MAX_DEFAULT_THREADS), 1)


def configure_torch_threads(requested: int | None) -> int | None:
    """Set torch's intra-op threads; returns the count set, or None when left to the
    environment variables the user set."""
    if requested is None:
        if any(os.environ.get(name) for name in THREAD_ENVIRONMENT_VARIABLES):
            return None
        requested = default_threads()
    torch.set_num_threads(requested)
    return requested
