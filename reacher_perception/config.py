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
from reacher_common.scheduling import NodeScheduling

TEST_TIME_SYMMETRIES: dict[int, tuple[int, ...]] = {
    1: (0,), 2: (0, 1), 4: (0, 1, 2, 3), 8: (0, 1, 2, 3, 4, 5, 6, 7)}
"""``test_time_symmetries`` -> the elements of the square's symmetry group
(``reacher_common.symmetry``: ``e = R^(e % 4) F^(e // 4)``) whose mapped frames the
``slac`` estimator filters: the identity; with a quarter turn; the four rotations; all
eight."""


@dataclass(frozen=True)
class PerceptionConfig(NodeScheduling):
    """Estimator choice, checkpoint and arm geometry of the perception core.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    estimator: str = 'slac'
    """Name of the estimator in ``reacher_perception.estimator.ESTIMATORS``: 'slac' (the
    shipped SLAC latent model, the default) or 'classical' (the OpenCV fit, the baseline);
    checked when the estimator is made."""
    geometry: ArmGeometry = field(default_factory=ArmGeometry)
    """The arm and camera the frames show (config/geometry.yaml); the classical estimator
    fits a model of exactly this arm, a learned one must have been trained for it."""
    checkpoint: str = ''
    """Path of a learned estimator's weights; '' for estimators that need none (classical)."""
    runtime: str = 'onnxruntime'
    """How a learned estimator runs its network: 'onnxruntime' (exported from the loaded
    checkpoint at start, ~0.4 ms a SLAC frame) or 'torch' (the reference, ~1.5 ms); the
    classical estimator ignores it."""
    rectify: bool = True
    """Rectify each frame with the camera's calibration (camera/camera_info: K, D, R, P,
    paired by stamp) before the estimator reads it, as image_proc does: a nudged camera's
    frames are read in the camera the estimators were trained on. False when the frames
    come rectified already (an image_proc ``image_rect`` stream)."""
    normalize_background: bool = True
    """Repaint the table under the arm in the clean scene's colour before the estimator
    reads the frame (``reacher_perception.background``): a new table, texture or uneven
    light then reads as the scene the estimators know. Applied after rectification; False
    gives the estimator the frame as it came."""
    test_time_symmetries: int = 8
    """Filters the ``slac`` estimator runs, one per symmetry of the square (1, 2, 4 or
    8; ``TEST_TIME_SYMMETRIES``): each filters the frame rotated or reflected by its
    element (the shoulder is at the image centre) with its command mapped alike, and the
    estimate is their readings mapped back and averaged, its confidence calibrated for
    that average from theirs and how well they agree (test-time augmentation). 8 reads
    `randomized` with a third fewer lost frames and a third of the silent failures of 1,
    for 2.3x the inference time (docs/ros.md, "Test-time symmetries"); the classical
    estimator ignores it."""
    warn_throttle_s: float = bounded(5.0, 0.0, 3600.0)
    """Least time between two repeats of the same warning from the node, seconds, in
    [0, 3600]."""

    def __post_init__(self) -> None:
        check_fields(self, {'runtime': self.runtime in ('onnxruntime', 'torch'),
                            'test_time_symmetries':
                                self.test_time_symmetries in TEST_TIME_SYMMETRIES})
