"""``reacher bag record``: write the live loop's topics into a new rosbag2 bag.

Subscribes with serialized (``raw=True``) subscriptions and writes the CDR bytes unchanged,
stamped with their receive time (system clock, ns), as ``ros2 bag record`` does. Each topic
is subscribed once a publisher of it appears, with a QoS that matches its publishers.
Message definitions and RIHS01 hashes come from the rosbags typestore
``Stores.ROS2_JAZZY``. rclpy is imported when recording starts, not with this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
import sys
import time
from typing import Annotated, Any, Literal

from rosbags.rosbag2 import StoragePlugin, Writer
import tyro

from reacher.bag.io import BagError, DEFAULT_TOPICS, resolve, typestore
from reacher.bag.ros import bag_qos, init_rclpy, message_class, qos_from_publishers, StopFlag


@dataclass
class RecordArgs:
    """Record the loop's topics from live nodes into a new rosbag2 bag (Ctrl-C to stop)."""

    output: Annotated[Path, tyro.conf.Positional, tyro.conf.arg(metavar='OUTPUT')]
    """Directory of the new bag; must not exist."""
    topics: tuple[str, ...] = DEFAULT_TOPICS
    """Topics to record; each is subscribed once a publisher of it appears. Relative names
    resolve under --namespace, as in a node of that namespace."""
    namespace: str = ''
    """Namespace of the loop to record (e.g. /arm1); '' = the root namespace."""
    duration: float = 0.0
    """Seconds to record, counted from the start; 0 records until Ctrl-C."""
    storage: Literal['mcap', 'sqlite3'] = 'mcap'
    """Storage plugin: 'mcap' (rosbag2's default since Iron) or 'sqlite3'."""
    progress_period: float = 1.0
    """Seconds between two progress lines (message counts); 0 for none."""


def run_record(args: RecordArgs) -> int:
    """``bag record``: subscribe raw, write CDR bytes with receive time, close on exit."""
    plugins = {'mcap': StoragePlugin.MCAP, 'sqlite3': StoragePlugin.SQLITE3}
    if args.storage not in plugins:
        raise BagError(f"--storage {args.storage!r} is unknown: use 'mcap' or 'sqlite3'")
    if args.output.exists():
        raise BagError(f'output {str(args.output)!r} exists already: choose a new path')
    if args.duration < 0:
        raise BagError(f'--duration {args.duration} must be >= 0 seconds')
    if not args.topics:
        raise BagError('--topics is empty: name at least one topic')
    topics = list(dict.fromkeys(resolve(topic, args.namespace) for topic in args.topics))
    store = typestore()
    rclpy = init_rclpy()
    from rclpy.node import Node

    node = Node('reacher_bag_recorder')
    writer = Writer(args.output, version=Writer.VERSION_LATEST,
                    storage_plugin=plugins[args.storage])
    writer.open()
    counts: dict[str, int] = dict.fromkeys(topics, 0)
    subscribed: dict[str, Any] = {}
    skipped: set[str] = set()
    print(f'[bag record] writing {args.output} ({args.storage}); waiting for '
          f'{len(topics)} topics (Ctrl-C to stop)', flush=True)

    def subscribe_new() -> None:
        for topic, types in node.get_topic_names_and_types():
            if topic not in counts or topic in subscribed or topic in skipped:
                continue
            msgtype = types[0]
            if msgtype not in store.fielddefs:
                print(f'[bag record] skipping {topic}: {msgtype} is not in the '
                      'ROS2_JAZZY typestore', file=sys.stderr, flush=True)
                skipped.add(topic)
                continue
            try:
                cls = message_class(msgtype)
            except BagError as error:
                print(f'[bag record] skipping {topic}: {error}', file=sys.stderr, flush=True)
                skipped.add(topic)
                continue
            qos = qos_from_publishers(node.get_publishers_info_by_topic(topic))
            connection = writer.add_connection(topic, msgtype, typestore=store,
                                               offered_qos_profiles=[bag_qos(qos)])

            def callback(data: bytes, topic: str = topic, connection: Any = connection) -> None:
                writer.write(connection, time.time_ns(), data)
                counts[topic] += 1

            subscribed[topic] = node.create_subscription(cls, topic, callback, qos, raw=True)

    start = time.monotonic()
    next_discovery, next_progress = start, start + args.progress_period
    try:
        with StopFlag() as flag:
            while not flag.stop:
                now = time.monotonic()
                if args.duration and now - start >= args.duration:
                    break
                if now >= next_discovery:
                    subscribe_new()
                    next_discovery = now + 0.5
                if args.progress_period and now >= next_progress:
                    _print_counts(now - start, counts)
                    next_progress = now + args.progress_period
                rclpy.spin_once(node, timeout_sec=0.05)
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        writer.close()
    _print_counts(time.monotonic() - start, counts)
    unseen = [topic for topic, count in counts.items() if count == 0]
    if unseen:
        print(f'[bag record] no messages on {", ".join(unseen)}', flush=True)
    print(f'[bag record] closed {args.output}: {sum(counts.values())} messages', flush=True)
    return 0


def _print_counts(elapsed: float, counts: dict[str, int]) -> None:
    seen = ', '.join(f'{topic} {count}' for topic, count in counts.items() if count)
    print(f'[bag record] {elapsed:6.1f} s  {sum(counts.values())} messages'
          f'{": " + seen if seen else ""}', flush=True)
