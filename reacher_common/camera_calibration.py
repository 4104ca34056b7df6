"""A camera's calibration as sensor_msgs/CameraInfo carries it, and rectification with it.

:class:`CameraCalibration` holds CameraInfo's K, D, R and P as arrays. The simulator
publishes its camera's calibration with every frame; a nudged camera (the ``camera``
scene family: a shift, roll and scale of the picture) is a raw camera whose K and R
differ from the nominal one, and P stays the nominal camera the estimators were trained
on. :class:`Rectifier` maps a raw frame to that rectified camera, as image_proc's
rectify node does on a ROS install (OpenCV's ``initUndistortRectifyMap`` and
``remap``), so an estimator reads every frame in the camera it knows.

Conventions (sensor_msgs/CameraInfo; REP-104 on camera frames): pixel centres at integer
coordinates; K is the raw camera's 3x3 intrinsics; D the plumb_bob distortion (k1, k2,
t1, t2, k3); R the rotation from the raw camera's frame to the rectified one; P the 3x4
projection of the rectified camera (its left 3x3 is the rectified intrinsics). No rclpy:
the bag tools read rosbags' messages with the same code.
"""

from __future__ import annotations

from dataclasses import dataclass
import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

MAX_DISTORTION_COEFFICIENTS = 14
"""OpenCV's longest distortion model (rational polynomial with thin prism and tilt)."""


@dataclass(frozen=True, eq=False)
class CameraCalibration:
    """The calibration of one camera: CameraInfo's size, K, D, R and P as float64 arrays.

    :param width: pixels.
    :param height: pixels.
    :param k: (3, 3) the raw camera's intrinsics, pixels.
    :param d: (n,) distortion coefficients, n = 0 or 4-14 (OpenCV's order; plumb_bob: 5).
    :param r: (3, 3) rotation from the raw camera's frame to the rectified camera's.
    :param p: (3, 4) the rectified camera's projection matrix, pixels.
    :raises ValueError: (from ``__post_init__``) naming the matrix that is not finite, not
        of its shape, K or P's left 3x3 that is singular, or R that is not a rotation.
    """

    width: int
    height: int
    k: FloatArray
    d: FloatArray
    r: FloatArray
    p: FloatArray

    def __post_init__(self) -> None:
        if not (0 < self.width <= 1 << 16 and 0 < self.height <= 1 << 16):
            raise ValueError(f'camera size {self.width}x{self.height} is out of range')
        shapes = {'K': (self.k, (3, 3)), 'R': (self.r, (3, 3)), 'P': (self.p, (3, 4))}
        for name, (matrix, shape) in shapes.items():
            if matrix.shape != shape or not np.isfinite(matrix).all():
                raise ValueError(f'{name} must be {shape[0]}x{shape[1]} and finite, got '
                                 f'{matrix.shape}')
        if self.d.ndim != 1 or self.d.size not in (0, 4, 5, 8, 12, 14) \
                or not np.isfinite(self.d).all():
            raise ValueError(f'D must hold 0, 4, 5, 8, 12 or 14 finite coefficients, got '
                             f'{self.d.size}')
        for name, matrix in (('K', self.k), ('P', self.p[:, :3])):
            if abs(np.linalg.det(matrix)) < 1e-12:
                raise ValueError(f'{name} is singular')
        if not np.allclose(self.r @ self.r.T, np.eye(3), atol=1e-6) \
                or np.linalg.det(self.r) < 0.0:
            raise ValueError('R is not a rotation matrix')

    @classmethod
    def pinhole(cls, width: int, height: int, k: npt.ArrayLike) -> CameraCalibration:
        """An ideal camera: no distortion, R = I, P = [K | 0] (the frame is rectified).

        :param width: pixels.
        :param height: pixels.
        :param k: (3, 3) intrinsics, pixels.
        """
        intrinsics = np.asarray(k, dtype=np.float64)
        return cls(width=width, height=height, k=intrinsics, d=np.zeros(5), r=np.eye(3),
                   p=np.hstack([intrinsics, np.zeros((3, 1))]))

    @classmethod
    def from_message(cls, msg: Any) -> CameraCalibration:
        """Read a CameraInfo message (rclpy's or rosbags').

        An all-zero K is CameraInfo's "uncalibrated camera"; it is refused like any
        other singular K. An empty R (all zeros) is taken as the identity, as image_geometry
        does for a monocular camera that leaves it unset.

        :param msg: with ``width``, ``height``, ``k`` (9), ``d``, ``r`` (9), ``p`` (12).
        :return: the calibration.
        :raises ValueError: as :class:`CameraCalibration`, or when an array has the wrong
            number of values or D more than 14.
        """
        if len(msg.d) > MAX_DISTORTION_COEFFICIENTS:
            raise ValueError(f'D has {len(msg.d)} coefficients, at most '
                             f'{MAX_DISTORTION_COEFFICIENTS} are known')
        arrays = {}
        for name, size, shape in (('k', 9, (3, 3)), ('r', 9, (3, 3)), ('p', 12, (3, 4))):
            values = np.asarray(getattr(msg, name), dtype=np.float64)
            if values.size != size:
                raise ValueError(f'{name.upper()} has {values.size} values, {size} expected')
            arrays[name] = values.reshape(shape)
        if not arrays['r'].any():
            arrays['r'] = np.eye(3)
        return cls(width=int(msg.width), height=int(msg.height),
                   d=np.asarray(msg.d, dtype=np.float64), **arrays)

    def message_fields(self) -> dict[str, Any]:
        """The keyword arguments of a CameraInfo (header aside), plumb_bob distortion."""
        return {'width': self.width, 'height': self.height, 'distortion_model': 'plumb_bob',
                'd': self.d.tolist(), 'k': self.k.ravel().tolist(),
                'r': self.r.ravel().tolist(), 'p': self.p.ravel().tolist()}

    @property
    def rectified(self) -> bool:
        """Whether a frame of this camera is already rectified.

        No distortion, R = I and K = P's left 3x3, to 1e-9: rectifying would change nothing.
        """
        return (not self.d.any() and np.allclose(self.r, np.eye(3), rtol=0.0, atol=1e-9)
                and np.allclose(self.k, self.p[:, :3], rtol=0.0, atol=1e-9))

    def raw_from_rectified(self) -> FloatArray:
        """The 3x3 homography from rectified pixels to raw pixels, distortion aside.

        ``K R^T P[:, :3]^-1``: for a camera without distortion, a rectified pixel
        (u, v, 1) shows what the raw frame has at this matrix times it (homogeneous).

        :return: (3, 3) float64.
        """
        return self.k @ self.r.T @ np.linalg.inv(self.p[:, :3])

    def same_as(self, other: CameraCalibration | None) -> bool:
        """Whether ``other`` is the same calibration (exact values)."""
        return other is not None and self.width == other.width \
            and self.height == other.height and np.array_equal(self.d, other.d) \
            and all(np.array_equal(a, b) for a, b in
                    ((self.k, other.k), (self.r, other.r), (self.p, other.p)))


def nudged(calibration: CameraCalibration, shift_px: tuple[float, float] = (0.0, 0.0),
           roll_deg: float = 0.0, scale: float = 1.0) -> CameraCalibration:
    """The calibration of a camera nudged from an ideal one: shifted, rolled and zoomed.

    The raw camera sees the picture of ``calibration`` rolled by ``roll_deg`` about the
    optical axis (counter-clockwise in the image, OpenCV's ``getRotationMatrix2D``
    sign), scaled by ``scale`` about the principal point and then shifted by
    ``shift_px``. P stays ``calibration``'s, so rectifying undoes the nudge.

    :param calibration: the ideal camera (rectified: R = I, K = P's left 3x3, no D).
    :param shift_px: (du, dv) pixels, the picture's shift (the principal point's).
    :param roll_deg: degrees.
    :param scale: the focal length's factor, > 0.
    :return: K = [[s f, 0, cx + du], [0, s f, cy + dv], [0, 0, 1]], R = Rz(roll) from
        the raw camera to the ideal one, D = 0.
    :raises ValueError: when ``calibration`` is not rectified or ``scale`` <= 0.
    """
    if not calibration.rectified:
        raise ValueError('only an ideal (rectified) camera can be nudged')
    if not scale > 0.0:
        raise ValueError(f'scale={scale} must be > 0')
    k = calibration.k.copy()
    k[0, 0] *= scale
    k[1, 1] *= scale
    k[0, 1] *= scale
    k[0, 2] += shift_px[0]
    k[1, 2] += shift_px[1]
    angle = math.radians(roll_deg)
    cos, sin = math.cos(angle), math.sin(angle)
    # The raw camera's axes: rectified coordinates rotated by Rz; CameraInfo's R maps raw
    # to rectified, so it is Rz's transpose.
    rotation = np.array([[cos, sin, 0.0], [-sin, cos, 0.0], [0.0, 0.0, 1.0]])
    return CameraCalibration(width=calibration.width, height=calibration.height, k=k,
                             d=np.zeros(5), r=rotation.T, p=calibration.p.copy())


class Rectifier:
    """Maps raw frames of one camera to its rectified camera (P), as image_proc does.

    Bilinear; the border replicates the nearest raw pixel (a nudge of a pixel or two
    leaves a sliver the raw frame did not see). A camera whose frames are already
    rectified passes them through untouched, at no cost.

    :param calibration: the camera.
    """

    def __init__(self, calibration: CameraCalibration) -> None:
        self.calibration = calibration
        self._maps: tuple[Any, Any] | None = None
        self._affine: FloatArray | None = None
        if calibration.rectified:
            return
        homography = calibration.raw_from_rectified()
        if not calibration.d.any() and np.allclose(homography[2], [0.0, 0.0, 1.0],
                                                   atol=1e-12):
            # An affine map (no distortion, rotation about the optical axis): one
            # warpAffine, ~4x cheaper than building and applying remap tables per size.
            self._affine = homography[:2] / homography[2, 2]
        else:
            self._maps = cv2.initUndistortRectifyMap(
                calibration.k, calibration.d, calibration.r, calibration.p[:, :3],
                (calibration.width, calibration.height), cv2.CV_32FC1)

    @property
    def identity(self) -> bool:
        """Whether frames pass through unchanged."""
        return self._affine is None and self._maps is None

    def __call__(self, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Rectify one frame.

        :param image: (height, width, C) uint8 raw frame of the calibrated camera.
        :return: (height, width, C) uint8, the rectified frame (``image`` itself when the
            camera is already rectified).
        :raises ValueError: when the frame's size is not the calibration's.
        """
        height, width = image.shape[:2]
        if (width, height) != (self.calibration.width, self.calibration.height):
            raise ValueError(f'a {width}x{height} frame for a camera calibrated at '
                             f'{self.calibration.width}x{self.calibration.height}')
        if self._affine is not None:
            return np.asarray(cv2.warpAffine(
                image, self._affine, (width, height),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE))
        if self._maps is not None:
            return np.asarray(cv2.remap(image, self._maps[0], self._maps[1],
                                        cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
        return image


class StampedRectifier:
    """Rectifies each frame with the calibration that came with it (CameraInfo by stamp).

    A camera publishes a CameraInfo with every frame, under the frame's stamp. Frames are
    rectified with the calibration of their own stamp when it has arrived, else with the
    newest one received before (counted in :attr:`unpaired_frames`), and passed through
    before any. The :class:`Rectifier` is rebuilt only when the calibration changes.

    :param keep: how many recent calibrations are kept for pairing.
    """

    def __init__(self, keep: int = 8) -> None:
        self.keep = keep
        self._by_stamp: dict[int, CameraCalibration] = {}
        self._newest: CameraCalibration | None = None
        self._rectifier: Rectifier | None = None
        self.rectified_frames = 0
        """Frames changed by rectification."""
        self.unpaired_frames = 0
        """Frames rectified with an earlier stamp's calibration (their own had not come)."""
        self.frames_without_calibration = 0
        """Frames passed through because no calibration had come yet."""

    def add(self, stamp_ns: int, calibration: CameraCalibration) -> None:
        """Keep a frame's calibration.

        :param stamp_ns: the CameraInfo's stamp, nanoseconds.
        :param calibration: its calibration.
        """
        if self._newest is not None and self._newest is not calibration \
                and self._newest.same_as(calibration):
            calibration = self._newest  # one object per calibration: cheap to compare
        self._by_stamp[stamp_ns] = calibration
        while len(self._by_stamp) > self.keep:
            del self._by_stamp[next(iter(self._by_stamp))]
        self._newest = calibration

    def __call__(self, stamp_ns: int, image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """Rectify one frame.

        :param stamp_ns: the frame's stamp, nanoseconds.
        :param image: (H, W, C) uint8, the raw frame.
        :return: the rectified frame (``image`` itself when nothing changes it).
        :raises ValueError: when the calibration's size is not the frame's.
        """
        calibration = self._by_stamp.get(stamp_ns)
        if calibration is None:
            calibration = self._newest
            if calibration is None:
                self.frames_without_calibration += 1
                return image
            self.unpaired_frames += 1
        if self._rectifier is None or self._rectifier.calibration is not calibration:
            self._rectifier = Rectifier(calibration)
        if self._rectifier.identity:
            return image
        self.rectified_frames += 1
        return self._rectifier(image)
