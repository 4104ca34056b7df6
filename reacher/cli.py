"""The ``reacher`` command: ``reacher demo`` and, per component, its tools.

``reacher demo [--headless] [--duration S] [--json]`` runs the closed loop;
``reacher policy ...`` and ``reacher perception ...`` train and evaluate the learned parts
(where installed). ``reacher <command> --help`` explains each.
"""

from __future__ import annotations

from collections.abc import Callable
import importlib
import sys

COMMANDS: dict[str, tuple[str, str]] = {
    'demo': ('reacher.demo:main', 'run the camera-in-the-loop demo (three ROS 2 nodes)'),
    'policy': ('reacher_policy.training.commands:policy_main',
               'train / evaluate learned controllers'),
    'perception': ('reacher_perception.cli:perception_main',
                   'train / evaluate learned perception'),
    'bag': ('reacher.bag.cli:bag_main', 'record / play / evaluate rosbag2 bags (rosbags library)'),
}


def _usage() -> str:
    lines = ['usage: reacher <command> [options]', '', 'commands:']
    lines += [f'  {name:<12} {help_text}' for name, (_, help_text) in COMMANDS.items()]
    lines += ['', "run 'reacher <command> --help' for a command's options"]
    return '\n'.join(lines)


def main(argv: list[str] | None = None) -> int:
    """Dispatch ``reacher <command> ...`` to the command's ``main(argv)``."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ('-h', '--help'):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f'reacher: unknown command {name!r}\n\n{_usage()}', file=sys.stderr)
        return 2
    module_name, function_name = COMMANDS[name][0].split(':')
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        print(f'reacher {name}: not available in this install ({error})', file=sys.stderr)
        return 2
    function: Callable[[list[str]], int] = getattr(module, function_name)
    return int(function(rest) or 0)


if __name__ == '__main__':
    raise SystemExit(main())
