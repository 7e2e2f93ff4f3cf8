"""The player processes a trainer started, and what they leave behind (for the chaos benches).

Linux only: reads ``/proc``.
"""

from __future__ import annotations

import os
from pathlib import Path


def player_ports(parent: int) -> dict[int, int]:
    """Players started by ``parent`` (in sessions of their own) -> the port each talks to."""
    players: dict[int, int] = {}
    for task in Path(f"/proc/{parent}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for pid in children:
            try:
                args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if b"--mlagents-port" in args:
                players[int(pid)] = int(args[args.index(b"--mlagents-port") + 1])
    return players


def player_pids(parent: int) -> list[int]:
    return sorted(player_ports(parent))


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie has exited)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def listening_ports() -> set[int]:
    """Every TCP port something on this machine listens on."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A":  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports
