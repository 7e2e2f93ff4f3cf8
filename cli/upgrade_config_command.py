"""``unity-sb3 upgrade-config OLD [--curriculum F] [--sampler F] -o NEW``: rewrite an old
ML-Agents configuration (and its pre-0.17 curriculum and sampler files) in the current format.

Only the settings the old files give are written (defaults stay implicit), in the layout
``unity-sb3 learn`` and mlagents-learn read. An existing NEW is kept unless ``--force``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from cli.command import Command
from cli.config_errors import ConfigError
from cli.legacy_config import LegacyConfigError, upgrade
from cli.training_config import parse_run_options, read_yaml_mapping

_PROG = "unity-sb3 upgrade-config"


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "trainer_config_path", metavar="OLD", type=Path, help="old-format trainer configuration"
    )
    parser.add_argument(
        "--curriculum", metavar="FILE", type=Path, help="pre-0.17 curriculum file to fold in"
    )
    parser.add_argument(
        "--sampler", metavar="FILE", type=Path, help="pre-0.17 sampler file to fold in"
    )
    parser.add_argument(
        "-o", "--output", metavar="NEW", type=Path, required=True, help="file to write"
    )
    parser.add_argument(
        "--force", action="store_true", help="overwrite NEW if it exists (it is kept otherwise)"
    )


def _run(args: argparse.Namespace) -> int:
    output: Path = args.output
    if output.is_dir():
        print(f"{_PROG}: error: {output} is a folder; give a file path", file=sys.stderr)
        return 1
    if output.exists() and not args.force:
        print(
            f"{_PROG}: error: {output} exists; pass --force to overwrite it or pick another -o",
            file=sys.stderr,
        )
        return 1
    try:
        old = read_yaml_mapping(args.trainer_config_path)
        curriculum = read_yaml_mapping(args.curriculum, "Curriculum") if args.curriculum else None
        sampler = read_yaml_mapping(args.sampler, "Sampler") if args.sampler else None
        result = upgrade(old, curriculum=curriculum, sampler=sampler)
    except ConfigError as err:
        print(f"{_PROG}: error: {err}", file=sys.stderr)
        return 1
    except LegacyConfigError as err:
        print(f"{_PROG}: error: {args.trainer_config_path}: {err}", file=sys.stderr)
        return 1
    for warning in result.warnings:
        print(f"{_PROG}: warning: {warning}", file=sys.stderr)

    sources = [str(p) for p in (args.trainer_config_path, args.curriculum, args.sampler) if p]
    header = f"# Converted by `unity-sb3 upgrade-config` from {', '.join(sources)}.\n"
    try:
        output.write_text(header + yaml.safe_dump(result.config, sort_keys=False))
    except OSError as err:
        print(f"{_PROG}: error: cannot write {output}: {err.strerror or err}", file=sys.stderr)
        return 1
    if result.is_legacy:
        print(f"Wrote {output}, converted from: {'; '.join(result.legacy_formats)}.")
    else:
        print(f"Wrote {output}; {args.trainer_config_path} was already in the current format.")
    try:
        parse_run_options(result.config, source=output)
    except ConfigError as err:
        print(f"{_PROG}: error: {output} was written but does not load yet:", file=sys.stderr)
        print(err, file=sys.stderr)
        return 1
    return 0


COMMAND = Command(
    name="upgrade-config",
    help="rewrite an old ML-Agents training configuration in the current format",
    description=(
        "Convert an old ML-Agents trainer configuration (pre-0.17 flat format or 0.17/0.18 "
        "layout), with optional pre-0.17 --curriculum and --sampler files, into one current-"
        "format YAML. An existing output file is kept unless --force is given."
    ),
    add_arguments=_add_arguments,
    run=_run,
)
