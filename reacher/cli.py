"""The ``reacher`` command: one tyro tree of subcommands, built one way.

::

    reacher demo [--headless] [--duration S] [--json] [--ros-args -p NAME:=VALUE ...]
    reacher policy {train,eval,tune,export} ...
    reacher perception {collect,train,eval} ...
    reacher bag {record,play,info,eval,to-dataset} ...

Each subcommand is a frozen dataclass of arguments (every field documented by the
docstring under it, which ``--help`` shows) and a runner, listed in its group's
``COMMANDS`` table (``name -> (Args, runner)``). The modules that define the argument
classes import no torch, gymnasium or stable_baselines3, so ``--help`` is quick; a runner
imports what it needs when it runs. A runner returns an exit code, or a dict that is
printed as one JSON line (exit code 0). ``ValueError`` and ``FileNotFoundError`` from a
runner end the command with one line and exit code 2.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import make_dataclass, replace
import importlib
import json
import sys
from typing import Annotated, Any, cast, Union

import tyro

Runner = Callable[[Any], 'int | dict[str, Any] | None']
CommandTable = dict[str, tuple[type, Runner]]

GROUPS: dict[str, tuple[str, str]] = {
    'policy': ('reacher_policy.training.commands',
               'Train, evaluate, tune and export learned controllers (Stable-Baselines3).'),
    'perception': ('reacher_perception.training.commands',
                   'Collect data for, train and evaluate the SLAC perception model.'),
    'bag': ('reacher.bag.cli',
            'Record, play and evaluate rosbag2 bags of the loop (rosbags, no ROS install).'),
}
"""Subcommand groups: name -> (module with a ``COMMANDS`` table, one-line help)."""

ROS_ARGS = '--ros-args'
"""Everything after it on a ``reacher demo`` line goes to every node, as ``ros2 run`` does."""


def _summary(cls: type) -> str:
    return (cls.__doc__ or '').strip().splitlines()[0] if cls.__doc__ else ''


def _group_type(name: str, help_text: str, commands: CommandTable,
                defaults: dict[str, Any], descriptions: dict[str, str]) -> type:
    """A dataclass whose one field is the union of the group's subcommands."""
    def marker(sub: str, cls: type) -> Any:
        description = descriptions.get(f'{name} {sub}', _summary(cls))
        if sub in defaults:
            return tyro.conf.subcommand(sub, default=defaults[sub], description=description)
        return tyro.conf.subcommand(sub, description=description)

    options = tuple(Annotated[cls, marker(sub, cls)] for sub, (cls, _) in commands.items())
    group = make_dataclass(f'{name.capitalize()}Commands',
                           [('command', Annotated[Union[options],  # noqa: UP007
                                                  tyro.conf.arg(name='')])],
                           frozen=True)
    group.__doc__ = help_text
    return group


def _policy_defaults(argv: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Take ``--preset NAME`` out of a ``policy train`` line: the preset is the defaults."""
    if argv[:2] != ['policy', 'train'] or '--preset' not in argv:
        return argv, {}
    from reacher_policy.training.config import named_config

    index = argv.index('--preset')
    if index + 1 >= len(argv):
        raise SystemExit('reacher policy train: --preset needs a NAME')
    name = argv[index + 1]
    return argv[:index] + argv[index + 2:], {'train': named_config(name)}


def _tables() -> tuple[dict[str, CommandTable], dict[str, str]]:
    """Each group's ``COMMANDS``, and the longer help texts (``DESCRIPTIONS``) by 'group sub'."""
    tables, descriptions = {}, {}
    for name, (module_name, _) in GROUPS.items():
        module = importlib.import_module(module_name)
        tables[name] = module.COMMANDS
        for sub, text in getattr(module, 'DESCRIPTIONS', {}).items():
            descriptions[f'{name} {sub}'] = text
    return tables, descriptions


def parse(argv: Sequence[str]) -> tuple[str, Any, Runner]:
    """Parse a ``reacher`` command line.

    :param argv: the arguments after ``reacher``.
    :return: the command's name (e.g. ``'policy train'``), its arguments and its runner.
    :raises SystemExit: for ``--help`` or a malformed line (tyro's message, exit code 2).
    """
    from reacher.demo import DemoArgs, run_demo

    argv = list(argv)
    ros_args: tuple[str, ...] = ()
    if argv[:1] == ['demo'] and ROS_ARGS in argv:
        index = argv.index(ROS_ARGS)
        argv, ros_args = argv[:index], tuple(argv[index + 1:])
    argv, policy_defaults = _policy_defaults(argv)
    tables, descriptions = _tables()
    groups = {name: _group_type(name, GROUPS[name][1], table,
                                policy_defaults if name == 'policy' else {}, descriptions)
              for name, table in tables.items()}
    options = (Annotated[DemoArgs, tyro.conf.subcommand('demo', description=_summary(DemoArgs))],
               *(Annotated[group, tyro.conf.subcommand(name, description=GROUPS[name][1])]
                 for name, group in groups.items()))
    args = tyro.cli(Union[options], args=argv, prog='reacher',  # type: ignore[call-overload]  # noqa: UP007
                    description=__doc__.split('\n\n')[0],
                    config=(tyro.conf.OmitSubcommandPrefixes,))
    if isinstance(args, DemoArgs):
        return 'demo', replace(args, ros_args=args.ros_args + ros_args), run_demo
    for name, group in groups.items():
        if isinstance(args, group):
            command = cast(Any, args).command
            for sub, (cls, runner) in tables[name].items():
                if type(command) is cls:
                    return f'{name} {sub}', command, runner
    raise AssertionError(f'no runner for {args!r}')


def run(name: str, args: Any, runner: Runner) -> int:
    """Run a parsed command; report a bad input in one line (exit code 2)."""
    try:
        result = runner(args)
    except (ValueError, FileNotFoundError) as error:
        print(f'reacher {name}: {error}', file=sys.stderr)
        return 2
    except SystemExit as exit_:
        if not isinstance(exit_.code, str):
            raise
        print(f'reacher {name}: {exit_.code}', file=sys.stderr)
        return 2
    if isinstance(result, dict):
        print(json.dumps(result, default=str))
        return 0
    return int(result or 0)


def main(argv: Sequence[str] | None = None) -> int:
    """``reacher ...``: parse the line, run the command, return its exit code."""
    try:
        name, args, runner = parse(sys.argv[1:] if argv is None else argv)
    except SystemExit as exit_:
        if isinstance(exit_.code, str):  # a message of ours (tyro prints its own)
            print(exit_.code, file=sys.stderr)
            return 2
        return 0 if exit_.code is None else exit_.code
    return run(name, args, runner)


if __name__ == '__main__':
    raise SystemExit(main())
