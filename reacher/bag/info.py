"""``reacher bag info``: a bag's duration, message count and per-topic type and count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import tyro

from reacher.bag.io import open_reader


@dataclass
class InfoArgs:
    """Print a bag's duration, topics, types and message counts."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag directory."""


def run_info(args: InfoArgs) -> int:
    """``bag info``: duration, storage and per-topic type and count."""
    with open_reader(args.bag) as reader:
        print(f'bag {args.bag}: {reader.duration * 1e-9:.2f} s, '
              f'{reader.message_count} messages')
        width = max((len(topic) for topic in reader.topics), default=0)
        for topic, info in sorted(reader.topics.items()):
            print(f'  {topic:<{width}}  {info.msgcount:>7}  {info.msgtype}')
    return 0
