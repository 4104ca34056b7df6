"""``reacher bag play``: publish a bag's messages again with their recorded timing.

Publishes the recorded CDR bytes unchanged, paced by their bag time (divided by ``--rate``),
with the QoS the recorded publishers offered. With ``--clock`` it also publishes
``rosgraph_msgs/Clock`` on /clock with the bag time, so nodes run with
``-p use_sim_time:=true`` live on the bag's clock. rclpy is imported when playing starts, not
with this module.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
import math
from pathlib import Path
import time
from typing import Annotated, Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import Reader
import tyro

from reacher.bag.io import BagError, CLOCK_TOPIC, open_reader, resolve, select_connections
from reacher.bag.ros import init_rclpy, message_class, qos_from_offered, StopFlag


@dataclass
class PlayArgs:
    """Publish a bag's messages again with their recorded timing."""

    bag: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='BAG')]
    """Bag directory (as written by 'reacher bag record' or 'ros2 bag record')."""
    rate: float = 1.0
    """Playback speed: 2.0 plays twice as fast; > 0."""
    clock: bool = False
    """Publish rosgraph_msgs/Clock on /clock with the bag time (for use_sim_time nodes)."""
    clock_hz: float = 100.0
    """Rate of /clock messages with --clock, Hz (wall clock); > 0."""
    topics: tuple[str, ...] = ()
    """Topics to play (default: all in the bag); each must be in the bag. Relative names
    resolve under --namespace."""
    namespace: str = ''
    """Namespace that relative --topics resolve under (e.g. /arm1)."""
    loop: bool = False
    """Start again from the beginning at the end, until Ctrl-C."""
    wait_for_subscribers: float = 0.0
    """Seconds to wait at most, before the first message, until every played topic has a
    matched subscriber (0: do not wait); playing on regardless after that."""
    delay: float = 1.0
    """Seconds between creating the publishers (and, with --wait-for-subscribers, their
    matching) and the first message, so that subscribers discover them first."""
    progress_period: float = 1.0
    """Seconds between two progress lines; 0 for none."""


@dataclass
class _Player:
    """The bag's messages in time order, once or looped, with the pacing state."""

    reader: Reader
    connections: list[Connection]

    def messages(self, loop: bool, stop: StopFlag
                 ) -> Iterator[tuple[bool, int, Connection, bytes]]:
        """(first of a pass, bag time ns, connection, raw CDR) in time order; looped if asked."""
        while not stop.stop:
            first = True
            for connection, time_ns, raw in self.reader.messages(connections=self.connections):
                yield first, time_ns, connection, bytes(raw)
                first = False
            if not loop:
                return


def run_play(args: PlayArgs) -> int:
    """``bag play``: publish raw bytes on schedule, and /clock with the bag time."""
    if not args.rate > 0 or not math.isfinite(args.rate):
        raise BagError(f'--rate {args.rate} must be a finite number > 0')
    if not args.clock_hz > 0:
        raise BagError(f'--clock-hz {args.clock_hz} must be > 0')
    with open_reader(args.bag) as reader:
        connections = select_connections(
            reader, [resolve(topic, args.namespace) for topic in args.topics])
        if args.clock:
            connections = [c for c in connections if c.topic != CLOCK_TOPIC]
        if not connections:
            raise BagError(f'nothing to play in {str(args.bag)!r}')
        classes = {c.id: message_class(c.msgtype) for c in connections}
        return _play(args, reader, connections, classes)


def _play(args: PlayArgs, reader: Reader, connections: list[Connection],
          classes: dict[int, type]) -> int:
    rclpy = init_rclpy()
    from rclpy.node import Node
    from rclpy.time import Time
    from rosgraph_msgs.msg import Clock

    node = Node('reacher_bag_player')
    publishers: dict[int, Any] = {}
    for connection in connections:
        qos = qos_from_offered(getattr(connection.ext, 'offered_qos_profiles', []))
        publishers[connection.id] = node.create_publisher(classes[connection.id],
                                                          connection.topic, qos)
    clock_pub = node.create_publisher(Clock, CLOCK_TOPIC, 10) if args.clock else None
    total = sum(c.msgcount for c in connections)
    print(f'[bag play] {args.bag}: {total} messages on '
          f'{", ".join(sorted({c.topic for c in connections}))} at rate {args.rate:g}'
          f'{", publishing /clock" if args.clock else ""}', flush=True)
    published = 0
    player = _Player(reader, connections)
    try:
        with StopFlag() as flag:
            deadline = time.monotonic() + args.wait_for_subscribers
            unmatched = list(publishers.values())
            while not flag.stop and unmatched and time.monotonic() < deadline:
                unmatched = [pub for pub in unmatched if pub.get_subscription_count() == 0]
                time.sleep(0.05)
            if args.wait_for_subscribers and unmatched:
                print('[bag play] no subscriber yet on '
                      f'{", ".join(pub.topic_name for pub in unmatched)}; playing anyway',
                      flush=True)
            deadline = time.monotonic() + args.delay
            while not flag.stop and time.monotonic() < deadline:
                time.sleep(0.02)
            bag_start: int | None = None
            wall_start = time.monotonic()
            clock_period = 1.0 / args.clock_hz
            next_clock = next_progress = wall_start

            def bag_now() -> int:
                elapsed = (time.monotonic() - wall_start) * args.rate
                return (bag_start or 0) + int(elapsed * 1e9)

            def wait_until(due: float) -> None:
                nonlocal next_clock
                while not flag.stop:
                    now = time.monotonic()
                    if clock_pub is not None and now >= next_clock:
                        clock_pub.publish(Clock(clock=Time(nanoseconds=bag_now()).to_msg()))
                        next_clock += clock_period
                        if next_clock < now:  # fell behind: do not burst
                            next_clock = now + clock_period
                    if now >= due:
                        return
                    upcoming = min(due, next_clock) if clock_pub is not None else due
                    time.sleep(max(0.0, min(upcoming - now, 0.05)))

            for first, time_ns, connection, raw in player.messages(args.loop, flag):
                if first or bag_start is None:
                    # The first message of a pass (--loop starts again): restart the schedule.
                    bag_start, wall_start = time_ns, time.monotonic()
                    next_clock = wall_start
                wait_until(wall_start + (time_ns - bag_start) * 1e-9 / args.rate)
                if flag.stop:
                    break
                publishers[connection.id].publish(raw)
                published += 1
                if args.progress_period and time.monotonic() >= next_progress:
                    print(f'[bag play] {published}/{total} messages, bag time '
                          f'+{(time_ns - bag_start) * 1e-9:.1f} s', flush=True)
                    next_progress = time.monotonic() + args.progress_period
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
    print(f'[bag play] done: {published} messages published', flush=True)
    return 0
