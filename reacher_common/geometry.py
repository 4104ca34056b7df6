"""The one definition of the arm, its camera and its timing that every part must agree on.

The simulator draws this arm, the estimators fit or learned it, the controllers steer it,
and every checkpoint records the geometry (and period) it was trained for. Each field is
a ROS parameter of all three nodes, given once by config/geometry.yaml under ``/**:``.
Units are SI (REP-103): metres, radians, seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
import math
from typing import Any

from reacher_common.config_tools import bounded, check_fields


@dataclass(frozen=True)
class ArmGeometry:
    """The 2-link planar arm, its arena and its top-down camera.

    The defaults are the seed's arena in SI units (1 seed unit = 1 mm): two 0.1 m links
    from the centre of a 0.4 m square arena, a 0.04 m goal square, joint velocities limited
    to 1 rad/s, seen by a 64x64 camera.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    upper_arm_length_m: float = bounded(0.1, 0.0, 1.0, low_open=True)
    """Shoulder-to-elbow link length, metres, in (0, 1]."""
    forearm_length_m: float = bounded(0.1, 0.0, 1.0, low_open=True)
    """Elbow-to-fingertip link length, metres, in (0, 1]."""
    link_width_m: float = bounded(0.012, 0.0, 1.0, low_open=True)
    """Drawn width of the links, metres, in (0, 1] and below arena_size_m."""
    arena_size_m: float = bounded(0.4, 0.0, 10.0, low_open=True)
    """Side of the square arena seen by the camera, metres, in (0, 10]; must hold the whole
    arm (at least twice its reach)."""
    goal_size_m: float = bounded(0.04, 0.0, 10.0, low_open=True)
    """Side of the square goal, metres, in (0, 10] and below arena_size_m."""
    image_size: int = bounded(64, 16, 1024)
    """Camera image width and height, pixels, in [16, 1024]."""
    camera_height_m: float = bounded(1.0, 0.0, 100.0, low_open=True)
    """Height of the pinhole camera over the arena plane, metres, in (0, 100] (only scales
    the intrinsics of CameraInfo)."""
    max_joint_velocity: float = bounded(1.0, 0.0, 100.0, low_open=True)
    """Joint velocity limit, rad/s, in (0, 100]; an action of +-1 commands this velocity."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'link_width_m': self.link_width_m < self.arena_size_m,
            'arena_size_m': self.arena_size_m >= 2.0 * self.reach_m,
            'goal_size_m': self.goal_size_m < self.arena_size_m,
        })

    @property
    def reach_m(self) -> float:
        """Total reach of the arm, metres."""
        return self.upper_arm_length_m + self.forearm_length_m

    @property
    def link_lengths(self) -> tuple[float, float]:
        """(upper arm, forearm), metres."""
        return (self.upper_arm_length_m, self.forearm_length_m)

    def in_arena(self, point: Any) -> bool:
        """Whether a point of the arena plane lies in the square the camera sees.

        :param point: (x, y) metres in ``world`` (the arena is centred on the shoulder).
        :return: True for finite coordinates within ``arena_size_m / 2`` of the centre.
        """
        half = self.arena_size_m / 2.0
        return all(math.isfinite(float(value)) and abs(float(value)) <= half
                   for value in point)

    @property
    def pixels_per_metre(self) -> float:
        """Image scale, pixels per metre of arena."""
        return self.image_size / self.arena_size_m


@dataclass(frozen=True)
class Timing:
    """The loop's clock: how often the world is stepped and seen.

    ``dt`` is the physics step, and by default also the camera period: sim_node's
    ``camera_rate_hz`` (``SimConfig``; 0 = one frame per step) may take a frame every few
    steps instead, at a rate that divides ``1 / dt``. The policy's own ``control_rate_hz``
    (``PolicyConfig``) is its control period. A learned model records the frame period it
    was trained at (``dt`` at the default camera rate), since its dynamics (SLAC's latent
    transition, an actor's one-step velocity) are learned per step.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    dt: float = bounded(0.05, 0.0, 1.0, low_open=True)
    """Physics step, seconds, in (0, 1] (0.05: 20 Hz); the camera period too unless
    sim_node's ``camera_rate_hz`` sets another."""

    def __post_init__(self) -> None:
        check_fields(self)


GEOMETRY_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(ArmGeometry))
"""The names of :class:`ArmGeometry`'s fields, in order (the keys of config/geometry.yaml)."""


def mismatches(expected: ArmGeometry, actual: ArmGeometry,
               names: tuple[str, ...] = GEOMETRY_FIELDS) -> list[str]:
    """The fields in which two geometries differ, as sentences for an error message.

    Every checkpoint check uses it: a model trained for one arm or camera must not drive
    or read another.

    :param expected: what the checkpoint (or file) was made for.
    :param actual: what the node or command is configured with.
    :param names: the fields to compare (default: all).
    :return: one ``'name: checkpoint X, config Y'`` per differing field; empty when equal.
    """
    return [f'{name}: checkpoint {getattr(expected, name)!r}, '
            f'config {getattr(actual, name)!r}'
            for name in names
            if not math.isclose(float(getattr(expected, name)), float(getattr(actual, name)),
                                rel_tol=1e-9, abs_tol=1e-12)]


def geometry_to_dict(geometry: ArmGeometry, timing: Timing) -> dict[str, Any]:
    """The flat dict that checkpoints and dataset shards store: geometry fields plus ``dt``."""
    return {**asdict(geometry), 'dt': timing.dt}


def geometry_from_dict(values: dict[str, Any]) -> tuple[ArmGeometry, Timing]:
    """Read what :func:`geometry_to_dict` wrote, or an older file's subset of it.

    Files written before the geometry was one class lack some fields (``link_width_m``,
    ``camera_height_m``); those take the defaults, which is what the simulator drew.

    :param values: a flat dict of geometry fields and ``dt``; other keys are ignored.
    :return: the geometry and the timing.
    :raises ValueError: for an out-of-range value.
    """
    known = {name: values[name] for name in GEOMETRY_FIELDS if name in values}
    timing = Timing(dt=float(values['dt'])) if 'dt' in values else Timing()
    return ArmGeometry(**known), timing
