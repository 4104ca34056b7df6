"""``reacher bag <record|play|info|eval|to-dataset> ...``: parse a subcommand and run it.

The top-level ``reacher`` command dispatches ``reacher bag ...`` to :func:`bag_main`. Each
subcommand's arguments are a dataclass in its own module; the runners import rclpy (record,
play) or the estimators (eval) only when they run.
"""

from __future__ import annotations

from collections.abc import Callable
import sys
from typing import Any

import tyro

from reacher.bag.dataset import DatasetArgs, run_to_dataset
from reacher.bag.evaluate import BagEvalArgs, run_eval
from reacher.bag.info import InfoArgs, run_info
from reacher.bag.io import BagError
from reacher.bag.play import PlayArgs, run_play
from reacher.bag.record import RecordArgs, run_record

SUBCOMMANDS: dict[str, Callable[..., Any]] = {
    'record': RecordArgs, 'play': PlayArgs, 'info': InfoArgs, 'eval': BagEvalArgs,
    'to-dataset': DatasetArgs,
}

RUNNERS: dict[type, Callable[[Any], int]] = {
    RecordArgs: run_record, PlayArgs: run_play, InfoArgs: run_info, BagEvalArgs: run_eval,
    DatasetArgs: run_to_dataset}


def bag_main(argv: list[str]) -> int:
    """``reacher bag <record|play|info|eval|to-dataset> ...`` entry point.

    :param argv: the arguments after ``bag``.
    :return: exit code: 0 done, 1 failed while running, 2 bad input.
    """
    try:
        args = tyro.extras.subcommand_cli_from_dict(
            SUBCOMMANDS, args=argv, prog='reacher bag',
            description='Record, play and evaluate rosbag2 bags of the reacher loop '
                        '(rosbags library, no ROS install needed).')
    except SystemExit as exit_:
        return int(exit_.code or 0) if not isinstance(exit_.code, str) else 2
    try:
        return RUNNERS[type(args)](args)
    except BagError as error:
        print(f'reacher bag: {error}', file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as error:
        print(f'reacher bag: {error}', file=sys.stderr)
        return 2
