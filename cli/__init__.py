"""The ``unity-sb3`` command line.

:mod:`cli.main` builds the argument parser from the subcommands listed in its ``COMMANDS``;
each subcommand lives in its own module and exports a :class:`cli.command.Command`.
"""
