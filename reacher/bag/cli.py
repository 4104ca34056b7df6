"""``reacher bag <record|play|info|eval|to-dataset> ...``: the bag subcommands' table.

Each subcommand's arguments are a dataclass in its own module, next to its runner; the
runners import rclpy (record, play) or the estimators (eval) only when they run. The
``reacher`` command (reacher/cli.py) parses the line and runs the subcommand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reacher.bag.dataset import DatasetArgs, run_to_dataset
from reacher.bag.evaluate import BagEvalArgs, run_eval
from reacher.bag.info import InfoArgs, run_info
from reacher.bag.play import PlayArgs, run_play
from reacher.bag.record import RecordArgs, run_record

COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    'record': (RecordArgs, run_record),
    'play': (PlayArgs, run_play),
    'info': (InfoArgs, run_info),
    'eval': (BagEvalArgs, run_eval),
    'to-dataset': (DatasetArgs, run_to_dataset),
}
"""name -> (arguments, runner); a runner returns the exit code (0 done, 1 failed while
running) and raises ``BagError`` (a ``ValueError``: exit code 2) for bad input."""


def bag_main(argv: list[str]) -> int:
    """``reacher bag ...`` with ``argv`` the arguments after ``bag``; returns the exit code."""
    from reacher.cli import main

    return main(['bag', *argv])
