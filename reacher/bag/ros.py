"""The rclpy side of ``record`` and ``play``: node set-up, signals, message classes, QoS.

Nothing here imports rclpy at module level; each function imports what it uses, so the
offline commands never load it.
"""

from __future__ import annotations

from collections.abc import Sequence
import importlib
import os
import signal
from typing import Any

from reacher.bag.io import BagError


class StopFlag:
    """Set by SIGINT / SIGTERM, so that loops end cleanly and the bag is closed."""

    def __init__(self) -> None:
        self.stop = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopFlag:
        for number in (signal.SIGINT, signal.SIGTERM):
            self._previous[number] = signal.signal(number, self._handle)
        return self

    def _handle(self, number: int, frame: Any) -> None:
        self.stop = True

    def __exit__(self, *exc: object) -> None:
        for number, handler in self._previous.items():
            signal.signal(number, handler)


def message_class(msgtype: str) -> type:
    """The rclpy message class of a type name, e.g. 'sensor_msgs/msg/Image'.

    :raises BagError: when the type's Python package is not installed.
    """
    package, _, name = msgtype.rpartition('/')
    try:
        module = importlib.import_module(package.replace('/', '.'))
        cls: type = getattr(module, name)
    except (ImportError, AttributeError) as error:
        raise BagError(f'message type {msgtype} is not installed ({error})') from error
    return cls


def init_rclpy() -> Any:
    """Initialise rclpy (loopback discovery by default) without its signal handlers.

    :return: the ``rclpy`` module.
    """
    os.environ.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    # Our own SIGINT handling closes the bag; rclpy's would shut the context mid-write.
    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    return rclpy


def qos_from_publishers(infos: Sequence[Any]) -> Any:
    """A subscription QoS that matches every publisher (as rosbag2's recorder adapts)."""
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

    reliable = all(info.qos_profile.reliability == ReliabilityPolicy.RELIABLE
                   for info in infos)
    latched = bool(infos) and all(
        info.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for info in infos)
    return QoSProfile(
        depth=100,
        reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))


def bag_qos(qos: Any) -> Any:
    """Convert an rclpy QoSProfile to a rosbags Qos (the bag's offered_qos_profiles)."""
    from rosbags.interfaces import (
        Qos,
        QosDurability,
        QosHistory,
        QosLiveliness,
        QosReliability,
        QosTime,
    )

    zero = QosTime(0, 0)
    return Qos(QosHistory.KEEP_LAST, int(qos.depth), QosReliability(int(qos.reliability)),
               QosDurability(int(qos.durability)), zero, zero, QosLiveliness.AUTOMATIC,
               zero, False)


def qos_from_offered(offered: Sequence[Any]) -> Any:
    """A publisher QoS for replaying a connection, from its recorded offered_qos_profiles.

    Best effort if any recorded publisher was; transient local (latched) only if all were.

    :param offered: rosbags ``Qos`` entries (empty when the bag has none).
    :return: an rclpy ``QoSProfile`` of depth 10.
    """
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rosbags.interfaces import QosDurability, QosReliability

    best_effort = any(q.reliability == QosReliability.BEST_EFFORT for q in offered)
    latched = bool(offered) and all(
        q.durability == QosDurability.TRANSIENT_LOCAL for q in offered)
    return QoSProfile(
        depth=10,
        reliability=(ReliabilityPolicy.BEST_EFFORT if best_effort
                     else ReliabilityPolicy.RELIABLE),
        durability=(DurabilityPolicy.TRANSIENT_LOCAL if latched
                    else DurabilityPolicy.VOLATILE))
