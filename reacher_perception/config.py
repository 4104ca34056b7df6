"""Typed configuration of the perception core: which estimator runs, and what it sees.

Each field is also a ROS parameter of the perception node (same name, same default) and a
YAML key under ``/**/perception_node: ros__parameters:`` in config/perception.yaml; the
geometry's fields come from config/geometry.yaml, which all three nodes share. Units are
SI (REP-103).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reacher_common.config_tools import bounded, check_fields
from reacher_common.geometry import ArmGeometry


@dataclass(frozen=True)
class PerceptionConfig:
    """Estimator choice, checkpoint and arm geometry of the perception core.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    estimator: str = 'classical'
    """Name of the estimator in ``reacher_perception.estimator.ESTIMATORS`` (e.g.
    'classical'); checked when the estimator is made."""
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """The arm and camera the frames show (config/geometry.yaml); the classical estimator
    fits a model of exactly this arm, a learned one must have been trained for it."""
    checkpoint: str = ''
    """Path of a learned estimator's weights; '' for estimators that need none (classical)."""
    runtime: str = 'onnxruntime'
    """How a learned estimator runs its network: 'onnxruntime' (exported from the loaded
    checkpoint at start, ~0.4 ms a SLAC frame) or 'torch' (the reference, ~1.5 ms); the
    classical estimator ignores it."""
    warn_throttle_s: float = bounded(5.0, 0.0, 3600.0)
    """Least time between two repeats of the same warning from the node, seconds, in
    [0, 3600]."""

    thread_priority: int = bounded(50, 0, 99)
    """SCHED_FIFO priority of every thread of the node's process, 1..99 (as ros2_control's
    ``thread_priority``), or 0 for the OS default scheduler; where the user may not use
    it (no ``rtprio`` limit or CAP_SYS_NICE) the node warns once and runs with the
    default (reacher_common.scheduling). Read at start-up."""
    cpu_dma_latency_us: int = bounded(0, -1, 1_000_000)
    """The CPUs' wake-up latency this node requests while it runs (Linux PM QoS,
    ``/dev/cpu_dma_latency``), microseconds: 0 keeps idle cores polling, so a frame's
    callback never waits for a core to wake; -1 requests nothing. Root only: elsewhere the
    node warns once and runs (reacher_common.scheduling). Read at start-up."""
    def __post_init__(self) -> None:
        check_fields(self, {'runtime': self.runtime in ('onnxruntime', 'torch')})
