"""What a ``unity-sb3`` subcommand provides to :mod:`cli.main`."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Command:
    """A subcommand: its name, one-line help, how to declare its arguments, and its body.

    ``run`` gets the parsed arguments and returns the process exit code.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str = ""
