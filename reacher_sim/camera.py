"""The simulator's camera: a top-down view of the arena and its pinhole model.

The camera looks straight down (-z) from ``camera_height_m`` above the shoulder, so the
arena plane maps to pixels by a scale and a flip of y. Pixel centres sit at integer
coordinates (OpenCV and sensor_msgs/CameraInfo convention), so the arena's edges fall on
-0.5 and ``image_size - 0.5``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from reacher_common.camera_calibration import CameraCalibration
from reacher_common.geometry import ArmGeometry


@dataclass(frozen=True)
class CameraModel:
    """Maps the ``world`` plane (z = 0) to pixels and back.

    :param image_size: width = height, pixels.
    :param arena_size_m: side of the square arena the image covers, metres.
    :param height_m: camera height over the plane, metres (enters only the intrinsics).
    """

    image_size: int
    arena_size_m: float
    height_m: float = 1.0

    @classmethod
    def from_geometry(cls, geometry: ArmGeometry) -> CameraModel:
        """Build the camera of an arm geometry."""
        return cls(geometry.image_size, geometry.arena_size_m, geometry.camera_height_m)

    @property
    def pixels_per_metre(self) -> float:
        """Scale of the image on the arena plane."""
        return self.image_size / self.arena_size_m

    @property
    def principal_point(self) -> float:
        """Cx = cy, pixels: the shoulder's image position."""
        return (self.image_size - 1) / 2.0

    def world_to_pixel(self, points: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Project world points to pixel coordinates.

        :param points: (..., 2) metres, (x, y) in ``world``.
        :return: (..., 2) float64 pixels, (u, v): u to the right, v down.
        """
        p = np.asarray(points, dtype=np.float64)
        u = self.principal_point + p[..., 0] * self.pixels_per_metre
        v = self.principal_point - p[..., 1] * self.pixels_per_metre
        return np.stack([u, v], axis=-1)

    def point_to_pixel(self, x: float, y: float) -> tuple[float, float]:
        """:meth:`world_to_pixel` of one point in Python floats (no numpy per-call cost).

        :param x: metres in ``world``.
        :param y: metres in ``world``.
        :return: (u, v) pixels, the same values as :meth:`world_to_pixel`.
        """
        return (self.principal_point + x * self.pixels_per_metre,
                self.principal_point - y * self.pixels_per_metre)

    def pixel_to_world(self, pixels: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Back-project pixel coordinates onto the arena plane.

        :param pixels: (..., 2) pixels, (u, v).
        :return: (..., 2) float64 metres, (x, y) in ``world``.
        """
        uv = np.asarray(pixels, dtype=np.float64)
        x = (uv[..., 0] - self.principal_point) / self.pixels_per_metre
        y = (self.principal_point - uv[..., 1]) / self.pixels_per_metre
        return np.stack([x, y], axis=-1)

    def intrinsics(self) -> npt.NDArray[np.float64]:
        """The 3x3 pinhole matrix K of sensor_msgs/CameraInfo.

        With the camera at height h looking down, u = cx + fx * x / h and
        v = cy - fy * y / h for a point (x, y, 0) in ``world``.

        :return: (3, 3) float64.
        """
        focal = self.pixels_per_metre * self.height_m
        c = self.principal_point
        return np.array([[focal, 0.0, c], [0.0, focal, c], [0.0, 0.0, 1.0]])

    def calibration(self) -> CameraCalibration:
        """This ideal camera as sensor_msgs/CameraInfo describes it.

        :return: K, no distortion, R = I and P = [K | 0] (its frames are rectified).
        """
        return CameraCalibration.pinhole(self.image_size, self.image_size, self.intrinsics())
