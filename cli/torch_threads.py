"""How many threads torch trains with: chosen by the networks, or by the user.

Torch's own default is one thread per core. Small (vector) networks gain nothing from more
threads and lose to thread wake-ups and to the players running beside them: on two cores
DiscreteSAC on built-in Basic stepped 200 agent-steps/s with one thread and 164 with two.
Convolutions do gain, and in SB3's synchronous loop the players wait while the model updates:
DiscreteSAC on built-in GridWorld stepped 37 agent-steps/s with one thread and 50 with two.
So without visual observations ``unity-sb3 learn`` takes mlagents-learn's rule (half the
available cores, 1 to 4), and with them every available core up to 4 (mlagents-learn keeps
half: its players step in other processes while it updates). ``torch_settings.num_threads``
(``--torch-threads``) overrides the choice, and so do ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS``
when set.
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


def default_threads(visual: bool) -> int:
    """Every available core up to 4 for visual networks; else mlagents-learn's choice, half
    the available cores, between 1 and 4."""
    cpus = available_cpus() if visual else available_cpus() // 2
    return max(min(cpus, MAX_DEFAULT_THREADS), 1)


def configure_torch_threads(requested: int | None, visual: bool) -> int | None:
    """Set torch's intra-op threads (``visual``: some behavior has visual observations);
    returns the count set, or None when left to the environment variables the user set."""
    if requested is None:
        if any(os.environ.get(name) for name in THREAD_ENVIRONMENT_VARIABLES):
            return None
        requested = default_threads(visual)
    torch.set_num_threads(requested)
    return requested
