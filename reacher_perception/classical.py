"""The classical estimator: colour unmixing and a least-squares fit of the scene's model.

No learning, and no memory but the last estimate: each frame is read on its own.

1. **Colour unmixing.** ``ArmRenderer`` anti-aliases, so an edge pixel is a blend of the
   scene colours of ``RenderStyle``. Away from the grey hub over the shoulder at most four
   colours take part (background, goal, upper arm, forearm); with the blend weights summing
   to one, the three channels give four linear equations for the four weights, solved for
   every pixel by one affine map (``cv2.transform``). The weights are soft masks, "alphas",
   whose edges keep their sub-pixel positions. Pixels on the hub are ignored.
2. **Arm.** Each link is a capsule (a thick segment with round ends, as ``cv2.line`` draws
   it) whose coverage of a pixel ramps from 1 to 0 across its edge (:func:`soft_ramp`).
   The forearm is drawn over the upper arm, so the upper arm's visible alpha is
   ``coverage_upper * (1 - coverage_forearm)``. The joint angles and the links' half-width
   (anti-aliasing widens the drawn line by a fraction of a pixel) are fitted to the two
   alphas by Levenberg-Marquardt with an analytic Jacobian. The fit starts from the
   forearm's moments: its centroid is its middle and its principal axis its direction,
   which give the elbow and so both angles. Fold-over poses, the forearm over the upper
   arm, need no special case: the forearm alone fixes the elbow, and the model knows what
   the forearm hides.
3. **Goal.** A square of known size, whose coverage is separable,
   ``soft_ramp(x - cx) * soft_ramp(y - cy)``. Whole and unoccluded, its centroid is its
   centre. Otherwise, since the arm is drawn over it, the goal's alpha is modelled as
   ``coverage * (1 - arm alpha)`` and the centre fitted, so that a goal partly under the
   arm or the hub, or cut by the image's edge, is still centred to a fraction of a pixel.

4. **Confidence** (analysis by synthesis). The estimate is drawn again with
   ``ArmRenderer`` in the clean scene and compared with the frame: the pixels whose colour
   differs by more than ``_MISMATCH_RGB`` are counted against the drawn arm and goal's
   pixels (``mismatch``), and the pixels out of the four colours' gamut against the frame
   (``gamut``). ``confidence = min(1 - mismatch / 1.6, 1 - gamut / 0.4)``, clipped to
   [0, 1], 0 when a part is not seen. An estimate that explains its frame scores near 1;
   another background, a distractor or the arm in the wrong place leave pixels it does not
   explain. Calibrated on 300 held-out frames of each scene (``reacher_sim.scene``): below
   0.5 holds every frame more than 10 deg or 20 mm off, and the clean, texture, camera,
   blur, noise and JPEG frames all score above it.

Fits run in pixel units, in the shoulder-centred frame ``world * pixels_per_metre``.
"""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from reacher_common.kinematics import wrap_angle
from reacher_perception.background import BackgroundNormalizer
from reacher_perception.classical_model import (
    capsule_coverage,
    levenberg_marquardt,
    square_model,
    unmixing_matrix,
)
from reacher_perception.config import PerceptionConfig
from reacher_perception.estimator import (
    Estimate,
    ESTIMATORS,
    fingertip_position,
    validate_image,
)
from reacher_sim.camera import CameraModel
from reacher_sim.render import ArmRenderer, RenderStyle

FloatArray = npt.NDArray[np.float64]

# Anti-aliasing (cv2.LINE_AA, then INTER_AREA) widens ArmRenderer's shapes by about 0.18 px
# on each side at 64x64 (fitted over random frames). The links' half-width is fitted (this
# is only its start); the goal's is not, as one hidden edge would leave it undetermined.
_AA_SPREAD_PX = 0.18
# A 3x3-averaged alpha above this marks a pixel as the part's core (a link's averaged alpha
# peaks at about 0.6). Pixel noise of sigma 5/255 gives the averaged alphas a noise of about
# 0.01, so no background pixel crosses it.
_CORE_ALPHA = 0.4
# The goal is taken as unoccluded when no pixel of its window has more arm than this.
_CLEAR_ALPHA = 0.1
# Confidence: a pixel is unexplained when the redrawn estimate's colour is this far off
# (RGB distance, 0-255; sensor noise of std 12 moves a pixel by ~21), and out of gamut when
# the four colours' blend misses it by this much.
_MISMATCH_RGB = 60.0
_GAMUT_RGB = 40.0
# Confidence 0.5 at this share of unexplained pixels (per drawn foreground pixel) and of
# out-of-gamut pixels (per frame pixel); measured on held-out scenes (module docstring).
_MISMATCH_AT_HALF = 0.8
_GAMUT_AT_HALF = 0.2


class ClassicalEstimator:
    """Joint angles, fingertip and goal from one rgb8 frame of ``ArmRenderer``'s scene.

    See the module docstring for the method. A part (arm or goal) counts as seen when
    enough pixels are mostly its colour; when it is not seen, its last estimate is kept
    and reported with ``*_visible = False`` (the goal does not move within an episode).

    :param config: the perception config (image size, arena, link lengths, goal size).
    :param style: the scene colours; ``ArmRenderer``'s defaults if None.
    :param max_iterations: Levenberg-Marquardt iterations per fit, >= 1.
    :raises ValueError: for ``max_iterations`` < 1.
    """

    config: PerceptionConfig
    camera: CameraModel
    style: RenderStyle
    max_iterations: int

    def __init__(self, config: PerceptionConfig, style: RenderStyle | None = None,
                 max_iterations: int = 10) -> None:
        if max_iterations < 1:
            raise ValueError(f'max_iterations={max_iterations} must be >= 1')
        self.config = config
        self.style = style or RenderStyle()
        self.max_iterations = max_iterations
        geometry = config.geometry
        self.camera = CameraModel.from_geometry(geometry)
        scale = self.camera.pixels_per_metre
        self._upper_arm_px = geometry.upper_arm_length_m * scale
        self._forearm_px = geometry.forearm_length_m * scale
        self._link_half_width_px = geometry.link_width_m * scale / 2.0 + _AA_SPREAD_PX
        self._goal_half_px = geometry.goal_size_m * scale / 2.0 + _AA_SPREAD_PX
        self._unmix = unmixing_matrix(self.style)
        self.normalize = (BackgroundNormalizer(geometry.image_size, self.style.background)
                          if config.normalize_background else None)
        """The frame's table repainted in ``style.background`` before the fit, or None
        (``PerceptionConfig.normalize_background``)."""
        size = geometry.image_size
        centre = self.camera.principal_point
        rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
        # Shoulder-centred pixel frame, y up: world coordinates times pixels_per_metre.
        self._x = (cols - centre).ravel()
        self._y = (centre - rows).ravel()
        # The hub (radius = half the link width) hides the shoulder; one more pixel for its
        # anti-aliased rim, whose grey unmixes into nonsense.
        hub_radius = geometry.link_width_m * scale / 2.0 + 1.0
        self._hub_free_mask = np.hypot(self._x, self._y) > hub_radius
        self._hub_free = self._hub_free_mask.astype(np.float32)
        self._hub_free_pixels = int(np.count_nonzero(self._hub_free_mask))
        # Share of each pixel's 3x3 neighbourhood outside the hub; infinite inside it.
        share = cv2.blur(self._hub_free.reshape(size, size), (3, 3))
        self._hub_free_share = np.where(self._hub_free_mask, share.ravel(), np.inf)
        # The pixels on the hub, and each pixel's core threshold for its three alphas.
        self._hub_index = np.flatnonzero(~self._hub_free_mask)
        self._core_threshold = np.repeat((_CORE_ALPHA * self._hub_free_share)[:, None], 3,
                                         axis=1)
        self._x_grid, self._y_grid = self._x.reshape(size, size), self._y.reshape(size, size)
        self._kernel = np.ones((3, 3), dtype=np.uint8)
        self._pixels_per_metre = scale
        # Core pixels needed to see a part: a quarter of the forearm's area (the hub can hide
        # its tip), a twentieth of the goal's (the hub and the folded arm can hide the rest).
        self._min_arm_pixels = max(1.0, 0.25 * geometry.link_width_m * scale * self._forearm_px)
        self._min_goal_pixels = max(1.0, 0.05 * (geometry.goal_size_m * scale) ** 2)
        self._joint_positions = np.zeros(2)
        self._goal = np.zeros(2)
        # What the estimate looks like, to compare with the frame (the confidence).
        self._redraw = ArmRenderer(geometry, self.style)
        colours = np.array([self.style.goal, self.style.upper_arm, self.style.forearm],
                           dtype=np.float32)
        self._background_rgb = np.asarray(self.style.background, dtype=np.float32)
        self._colour_offsets = colours - self._background_rgb
        self._background_image = np.empty((size, size, 3), dtype=np.uint8)
        self._background_image[:] = self.style.background
        self._channel_sum = np.ones((1, 3), dtype=np.float32)
        self._hub_free_grid = self._hub_free_mask.reshape(size, size)

    def reset(self) -> None:
        """Forget the last estimates: parts not seen read as zeros until they are seen."""
        self._joint_positions = np.zeros(2)
        self._goal = np.zeros(2)

    def estimate(self, image: npt.NDArray[np.uint8],
                 previous_command: npt.NDArray[np.float64] | None = None) -> Estimate:
        """Estimate joint angles, fingertip and goal from one frame.

        :param image: (H, W, 3) uint8 rgb8, H = W = ``config.geometry.image_size``.
        :param previous_command: ignored (each frame is read on its own).
        :return: the estimate; parts not seen keep their previous values.
        :raises ValueError: if the image has the wrong shape or dtype.
        """
        validate_image(image, self.config.geometry.image_size)
        if self.normalize is not None:
            image = self.normalize(image)
        # (H, W, 3) rgb -> (H*W, 3) alphas of (goal, upper arm, forearm).
        pixels = image.astype(np.float32)
        alpha = np.asarray(cv2.transform(pixels, self._unmix),
                           dtype=np.float32).reshape(-1, 3)
        np.clip(alpha, 0.0, 1.0, out=alpha)
        alpha[self._hub_index] = 0.0
        # Parts are found on 3x3-averaged alphas, a third as noisy, averaged over the pixels
        # outside the hub only (normalised convolution), so that the hub does not thin them.
        size = self.config.geometry.image_size
        averaged = cv2.blur(alpha.reshape(size, size, 3), (3, 3)).reshape(-1, 3)
        core = averaged > self._core_threshold
        upper, forearm = alpha[:, 1], alpha[:, 2]
        joints = self._fit_arm(upper, forearm, core[:, 1], core[:, 2])
        arm_visible = joints is not None
        if joints is not None:
            self._joint_positions = joints
        goal = self._fit_goal(alpha, core[:, 0])
        goal_visible = goal is not None
        if goal is not None:
            self._goal = goal
        shoulder, elbow = self._joint_positions.tolist()
        upper_arm_m, forearm_m = self.config.geometry.link_lengths
        fingertip = fingertip_position(shoulder, elbow, upper_arm_m, forearm_m)
        confidence = (self.confidence(image, alpha, pixels) if arm_visible and goal_visible
                      else 0.0)
        return Estimate(joint_positions=self._joint_positions.copy(), fingertip=fingertip,
                        goal=self._goal.copy(), arm_visible=arm_visible,
                        goal_visible=goal_visible, confidence=confidence)

    def confidence(self, image: npt.NDArray[np.uint8], alpha: npt.NDArray[np.float32],
                   pixels: npt.NDArray[np.float32] | None = None) -> float:
        """How well the present estimate explains the frame (module docstring, step 4).

        Computed on every pixel and counted outside the hub (no masked copies): the same
        counts as on the hub-free pixels alone, and the same confidence on 2000 frames of
        every scene, noisy ones included.

        :param image: (H, W, 3) uint8 rgb8, the frame.
        :param alpha: (H*W, 3) float32, its blend weights of (goal, upper arm, forearm),
            clipped to [0, 1].
        :param pixels: ``image`` as (H, W, 3) float32, if the caller has it already.
        :return: the confidence in [0, 1].
        """
        size = self.config.geometry.image_size
        frame = image.astype(np.float32) if pixels is None else pixels.reshape(size, size, 3)
        drawn = self._redraw.render(self._joint_positions, self._goal)
        # Squared RGB distances by OpenCV, exact: integers below 2^24 in float32.
        drawn_pixels = max(self._count_far(cv2.absdiff(drawn, self._background_image),
                                           0.5 * _MISMATCH_RGB), 1)
        mismatch_share = self._count_far(cv2.absdiff(image, drawn), _MISMATCH_RGB
                                         ) / drawn_pixels
        blend = alpha @ self._colour_offsets
        blend += self._background_rgb
        gamut = cv2.subtract(frame, blend.reshape(size, size, 3))
        gamut_share = self._count_far(gamut, _GAMUT_RGB) / self._hub_free_pixels
        score = min(1.0 - 0.5 * mismatch_share / _MISMATCH_AT_HALF,
                    1.0 - 0.5 * gamut_share / _GAMUT_AT_HALF)
        return float(min(max(score, 0.0), 1.0))

    def _count_far(self, difference: npt.NDArray[Any], limit: float) -> int:
        """How many pixels outside the hub differ by more than ``limit`` (RGB distance).

        :param difference: (H, W, 3) the per-channel differences, uint8 or float32.
        :param limit: the distance, 0-255 units.
        :return: the count.
        """
        squared = cv2.multiply(difference, difference, dtype=cv2.CV_32F)
        distance_sq = cv2.transform(squared, self._channel_sum)
        return int(np.count_nonzero((distance_sq > limit * limit) & self._hub_free_grid))

    def _fit_arm(self, upper: npt.NDArray[np.float32], forearm: npt.NDArray[np.float32],
                 upper_core: npt.NDArray[np.bool_], forearm_core: npt.NDArray[np.bool_]
                 ) -> FloatArray | None:
        """Fit the joint angles to the links' alphas.

        :param upper: (H*W,) float32 alpha of the upper arm's colour, in [0, 1].
        :param forearm: (H*W,) float32 alpha of the forearm's colour, in [0, 1].
        :param upper_core: (H*W,) bool, pixels mostly of the upper arm's colour.
        :param forearm_core: (H*W,) bool, pixels mostly of the forearm's colour.
        :return: (2,) float64 radians, wrapped; None if the forearm is not seen.
        """
        if np.count_nonzero(forearm_core) < self._min_arm_pixels:
            return None
        size = self.config.geometry.image_size
        core = (forearm_core | upper_core).view(np.uint8).reshape(size, size)
        # Fit over the links and a 1-pixel rim, so that a model too wide is penalised.
        region = cv2.dilate(core, self._kernel).ravel().view(bool) & self._hub_free_mask
        index = np.flatnonzero(region)
        x, y = self._x[index], self._y[index]
        observed = np.concatenate([upper[index], forearm[index]]).astype(np.float64)
        # The start uses the cores only: noise that survives the clip to [0, 1] is positive,
        # and over the rim it would pull the moments towards the region's middle.
        params = self._arm_start(x, y, observed[:index.size] * upper_core[index],
                                 observed[index.size:] * forearm_core[index])
        residual, jacobian = self._arm_model(params, x, y, observed)
        params = levenberg_marquardt(lambda p: self._arm_model(p, x, y, observed), params,
                                      residual, jacobian, self.max_iterations,
                                      (0.5 * self._link_half_width_px,
                                       2.0 * self._link_half_width_px))
        return wrap_angle(params[:2])

    def _arm_start(self, x: FloatArray, y: FloatArray, upper: FloatArray,
                   forearm: FloatArray) -> FloatArray:
        """Joint angles from the forearm's moments, where the fit starts.

        The forearm is drawn last, so it is whole (but where it crosses the hub): its
        centroid is its middle and its principal axis its direction. Of its two ends, the
        elbow is the one on the upper arm's circle and in the upper arm's direction; both
        ends can only be near that circle when the arm is not folded, and then the upper
        arm is in sight.

        :param x: (N,) float64 pixel centres, pixels.
        :param y: (N,) float64 pixel centres, pixels.
        :param upper: (N,) float64 alpha of the upper arm, 0 outside its core.
        :param forearm: (N,) float64 alpha of the forearm, 0 outside its core.
        :return: (3,) float64 shoulder angle (rad), elbow angle (rad), link half-width (px).
        """
        mass = float(forearm.sum())
        mid_x, mid_y = float(forearm @ x) / mass, float(forearm @ y) / mass
        offset_x, offset_y = x - mid_x, y - mid_y
        axis = 0.5 * math.atan2(2.0 * float(forearm @ (offset_x * offset_y)),
                                float(forearm @ (offset_x * offset_x - offset_y * offset_y)))
        upper_mass = float(upper.sum())
        upper_angle = math.atan2(float(upper @ y), float(upper @ x)) if upper_mass > 0 else 0.0
        best_score, best = math.inf, np.zeros(3)
        for forearm_angle in (axis, axis + math.pi):
            elbow_x = mid_x - 0.5 * self._forearm_px * math.cos(forearm_angle)
            elbow_y = mid_y - 0.5 * self._forearm_px * math.sin(forearm_angle)
            shoulder = math.atan2(elbow_y, elbow_x)
            # Pixels off the upper arm's circle, plus pixels off its direction at mid-arm.
            score = abs(math.hypot(elbow_x, elbow_y) - self._upper_arm_px)
            if upper_mass >= self._min_arm_pixels:
                score += 0.5 * self._upper_arm_px * abs(float(wrap_angle(shoulder - upper_angle)))
            if score < best_score:
                best_score = score
                best = np.array([shoulder, forearm_angle - shoulder, self._link_half_width_px])
        return best

    def _arm_model(self, params: FloatArray, x: FloatArray, y: FloatArray,
                   observed: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Residual and Jacobian of the two-capsule model of the arm.

        :param params: (3,) shoulder angle (rad), elbow angle (rad), link half-width (px).
        :param x: (N,) float64 pixel centres, pixels.
        :param y: (N,) float64 pixel centres, pixels.
        :param observed: (2N,) float64, the upper arm's alphas, then the forearm's.
        :return: ``(residual, jacobian)``: (2N,) model minus observed, (2N, 3) float64.
        """
        shoulder, elbow_angle, half_width = float(params[0]), float(params[1]), float(params[2])
        absolute = shoulder + elbow_angle
        elbow = (self._upper_arm_px * math.cos(shoulder), self._upper_arm_px * math.sin(shoulder))
        forearm_dir = (self._forearm_px * math.cos(absolute),
                       self._forearm_px * math.sin(absolute))
        tip = (elbow[0] + forearm_dir[0], elbow[1] + forearm_dir[1])
        # d(elbow)/d(shoulder angle) and d(tip)/d(elbow angle); d(tip)/d(shoulder) is their sum.
        elbow_rate = (-elbow[1], elbow[0])
        tip_rate = (-forearm_dir[1], forearm_dir[0])
        # Both links in one pass: row 0 the upper arm, row 1 the forearm.
        cover, ramp, along, normal_x, normal_y = capsule_coverage(
            x, y, np.array([(0.0, 0.0), elbow]), np.array([elbow, tip]), half_width)
        cover_u, cover_f = cover
        ramp_u, ramp_f = ramp
        count = x.size
        jacobian = np.empty((2 * count, 3))
        # A distance to a segment moves with an end point by -(weight of that end) * normal.
        # Forearm rows: d/d(shoulder) = (push_elbow + along * push_tip) * ramp,
        # d/d(elbow) = along * push_tip * ramp, d/d(half-width) = ramp.
        push_tip = normal_x[1] * tip_rate[0]
        push_tip += normal_y[1] * tip_rate[1]
        push_tip *= along[1]
        push_elbow = normal_x[1] * elbow_rate[0]
        push_elbow += normal_y[1] * elbow_rate[1]
        push_elbow += push_tip
        forearm_shoulder = np.multiply(push_elbow, ramp_f, out=jacobian[count:, 0])
        forearm_elbow = np.multiply(push_tip, ramp_f, out=jacobian[count:, 1])
        jacobian[count:, 2] = ramp_f
        # Upper arm rows: its visible alpha is cover_u * hidden.
        hidden = 1.0 - cover_f
        upper_shoulder = normal_x[0] * elbow_rate[0]
        upper_shoulder += normal_y[0] * elbow_rate[1]
        upper_shoulder *= along[0]
        upper_shoulder *= ramp_u
        upper_shoulder *= hidden
        upper_shoulder -= cover_u * forearm_shoulder
        jacobian[:count, 0] = upper_shoulder
        np.multiply(cover_u, forearm_elbow, out=jacobian[:count, 1])
        np.negative(jacobian[:count, 1], out=jacobian[:count, 1])
        upper_size = np.multiply(ramp_u, hidden, out=jacobian[:count, 2])
        upper_size -= cover_u * ramp_f
        residual = np.empty(2 * count)
        np.multiply(cover_u, hidden, out=residual[:count])
        residual[count:] = cover_f
        residual -= observed
        return residual, jacobian

    def _fit_goal(self, alpha: npt.NDArray[np.float32], goal_core: npt.NDArray[np.bool_]
                  ) -> FloatArray | None:
        """Locate the goal square's centre from the goal's alpha.

        :param alpha: (H*W, 3) float32 alphas of (goal, upper arm, forearm), in [0, 1]; the
            arm over the goal is the sum of the last two, at most 1.
        :param goal_core: (H*W,) bool, pixels mostly of the goal's colour.
        :return: (2,) float64 metres in ``world``; None if the goal is not seen.
        """
        core = np.flatnonzero(goal_core)
        if core.size < self._min_goal_pixels:
            return None
        size = self.config.geometry.image_size
        rows, cols = np.divmod(core, size)
        # A window around the core's median, wide enough for a goal shifted by occlusion;
        # in it, the middle of the core's extent is a start that occlusion barely moves.
        # The medians as np.median takes them (the mean of the middle two), without its
        # overhead: ``rows`` is sorted already (flatnonzero is in row-major order).
        lower, upper = (core.size - 1) // 2, core.size // 2
        median_row = 0.5 * float(rows[lower] + rows[upper])
        middle = np.partition(cols, (lower, upper))
        median_col = 0.5 * float(middle[lower] + middle[upper])
        reach = self._goal_half_px + 2.0
        near = ((np.abs(rows - median_row) <= reach)
                & (np.abs(cols - median_col) <= reach))
        if np.count_nonzero(near) < self._min_goal_pixels:
            return None
        rows, cols = rows[near], cols[near]
        start_row = 0.5 * float(rows.min() + rows.max())
        start_col = 0.5 * float(cols.min() + cols.max())
        top, bottom = math.ceil(start_row - reach), math.floor(start_row + reach) + 1
        left, right = math.ceil(start_col - reach), math.floor(start_col + reach) + 1
        inside = top >= 0 and left >= 0 and bottom <= size and right <= size
        top, left = max(top, 0), max(left, 0)
        window = (slice(top, bottom), slice(left, right))
        alpha_window = alpha.reshape(size, size, 3)[window]
        goal_window = alpha_window[:, :, 0].astype(np.float64)
        arm_window = np.minimum(alpha_window[:, :, 1] + alpha_window[:, :, 2], 1.0
                                ).astype(np.float64)
        hub_window = self._hub_free_mask.reshape(size, size)[window]
        x, y = self._x_grid[window], self._y_grid[window]
        if inside and hub_window.all() and arm_window.max() < _CLEAR_ALPHA:
            # Whole and unoccluded: a square's centroid is its centre, whatever its edges.
            mass = goal_window.sum()
            return np.array([float((goal_window * x).sum()) / mass,
                             float((goal_window * y).sum()) / mass]) / self._pixels_per_metre
        # Partly hidden by the arm or the hub, or cut by the image's edge: fit the model.
        x, y = x[hub_window], y[hub_window]
        observed, visible = goal_window[hub_window], 1.0 - arm_window[hub_window]
        half_side = self._goal_half_px
        centre = self.camera.principal_point
        params = np.array([start_col - centre, centre - start_row])
        residual, jacobian = square_model(params, half_side, x, y, visible, observed)
        params = levenberg_marquardt(
            lambda p: square_model(p, half_side, x, y, visible, observed), params, residual,
            jacobian, self.max_iterations)
        return params / self._pixels_per_metre


ESTIMATORS['classical'] = ClassicalEstimator
