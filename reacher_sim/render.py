"""Headless OpenCV renderer of the arena: what the camera sees.

Draws, in this order, the background (with the scene's colour, texture and static
distractors), the goal square, the upper arm, the forearm and the shoulder hub, at
``supersample`` times the image size, then averages down (cv2.INTER_AREA), so edges carry
sub-pixel position information at 64x64. Only the regions a frame draws in are restored
and averaged down; the rest of the frame is the background's averaged-down copy, kept per
scene (the same pixels: at a whole factor INTER_AREA averages each block on its own). A
scene (``reacher_sim.scene``) then adds, at the output size, its moving object, lighting,
camera jitter, blur, sensor noise and JPEG artefacts. Needs no display and no GPU; about
0.06 ms per clean 64x64 frame on one core (benchmarks/render_scenes.py measures every
scene).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from reacher_common.camera_calibration import nudged
from reacher_common.geometry import ArmGeometry
from reacher_common.kinematics import forward_kinematics
from reacher_sim.camera import CameraModel
from reacher_sim.scene import RGB, Scene, texture


@dataclass(frozen=True)
class RenderStyle:
    """Colours (RGB, 0-255) of the scene; the classical estimator segments by them."""

    background: RGB = (24, 24, 32)
    goal: RGB = (60, 200, 80)
    upper_arm: RGB = (70, 130, 255)
    forearm: RGB = (255, 150, 40)
    hub: RGB = (200, 200, 200)


class ArmRenderer:
    """Renders the arm and the goal as an rgb8 image.

    :param geometry: link lengths and width, arena, goal size and image size.
    :param style: colours.
    :param supersample: drawing resolution over the output's, >= 1.
    """

    def __init__(self, geometry: ArmGeometry, style: RenderStyle | None = None,
                 supersample: int = 4) -> None:
        if supersample < 1:
            raise ValueError(f'supersample={supersample} must be >= 1')
        self.geometry = geometry
        self.style = style or RenderStyle()
        self.supersample = supersample
        self.camera = CameraModel.from_geometry(geometry)
        size = geometry.image_size * supersample
        self._canvas = np.empty((size, size, 3), dtype=np.uint8)
        # Copying a prepared background is ~20x faster than broadcasting a colour tuple.
        self._background = np.empty_like(self._canvas)
        self._shift = 4  # cv2 fixed-point bits: 1/16 pixel at the drawing resolution
        self._line_width = max(1, int(round(geometry.link_width_m * self.camera.pixels_per_metre
                                            * supersample)))
        self.scene = Scene()
        self._light: npt.NDArray[np.float32] | None = None
        self._warp: npt.NDArray[np.float64] | None = None
        self.calibration = self.camera.calibration()
        """The camera that drew the frames of the current scene (CameraInfo's K, D, R, P)."""
        self._noise_rng = np.random.default_rng(0)
        self._frame_index = 0
        # The canvas regions the last frame drew in, (top, bottom, left, right) at the
        # drawing resolution, each a whole number of output pixels; the rest of the canvas
        # is the background, and the rest of the frame its averaged-down copy.
        self._drawn: list[tuple[int, int, int, int]] = []
        self._small_background = np.empty((geometry.image_size, geometry.image_size, 3),
                                          dtype=np.uint8)
        self.set_scene(None)

    @property
    def avoid_colours(self) -> tuple[RGB, ...]:
        """The colours a scene's background and distractors keep away from."""
        style = self.style
        return (style.goal, style.upper_arm, style.forearm, style.hub)

    def set_scene(self, scene: Scene | None) -> None:
        """Draw the next frames into ``scene`` (None: the clean scene).

        Prepares what stays for the whole scene: the background canvas (colour, texture,
        lines and blobs), the light map and the camera warp; restarts the moving object and
        the noise stream (seeded by ``scene.seed``).

        :param scene: a scene from :meth:`reacher_sim.scene.SceneConfig.sample`, or None.
        """
        scene = scene or Scene()
        self.scene = scene
        self._frame_index = 0
        self._noise_rng = np.random.default_rng(scene.seed)
        self._background[:] = scene.background or self.style.background
        big = self._background.shape[0]
        if scene.texture_amplitude > 0.0:
            pattern = texture(big, scene.texture_cells, scene.texture_amplitude, scene.seed)
            np.copyto(self._background, np.clip(self._background + pattern, 0, 255),
                      casting='unsafe')
        scale, shift = big - 1, self._shift
        for (x0, y0, x1, y1), colour in scene.lines:
            start = (int(x0 * scale) << shift, int(y0 * scale) << shift)
            end = (int(x1 * scale) << shift, int(y1 * scale) << shift)
            cv2.line(self._background, start, end, colour, self.supersample, cv2.LINE_AA, shift)
        for x, y, radius, colour in scene.blobs:
            cv2.circle(self._background, (int(x * scale) << shift, int(y * scale) << shift),
                       int(radius * self.supersample) << shift, colour, -1, cv2.LINE_AA, shift)
        size = self.geometry.image_size
        self._light = None
        if 'lighting' in scene.families:
            ramp = np.linspace(-1.0, 1.0, size, dtype=np.float32)
            gx, gy = scene.gradient
            light = scene.gain * (1.0 + gx * ramp[None, :] + gy * ramp[:, None])
            self._light = (light[:, :, None] * np.asarray(scene.colour_gain, np.float32)
                           ).astype(np.float32)
        self._warp = None
        self.calibration = self.camera.calibration()
        if 'camera' in scene.families:
            # The nudged camera's calibration defines the warp: rectifying with it (what
            # the sim publishes on camera_info) undoes the nudge.
            self.calibration = nudged(self.calibration, shift_px=scene.shift_px,
                                      roll_deg=scene.roll_deg, scale=scene.scale)
            self._warp = self.calibration.raw_from_rectified()[:2]
        np.copyto(self._canvas, self._background)
        self._drawn = []
        if self.supersample > 1:
            np.copyto(self._small_background, cv2.resize(self._background, (size, size),
                                                         interpolation=cv2.INTER_AREA))

    def _to_canvas(self, x: float, y: float) -> tuple[int, int]:
        """A world point -> fixed-point canvas coordinates for cv2 (shift bits)."""
        u, v = self.camera.point_to_pixel(x, y)
        step = self.supersample
        return (round(((u + 0.5) * step - 0.5) * (1 << self._shift)),
                round(((v + 0.5) * step - 0.5) * (1 << self._shift)))

    def render(self, joint_positions: npt.ArrayLike, goal: npt.ArrayLike) -> npt.NDArray[np.uint8]:
        """Draw one frame.

        :param joint_positions: (2,) radians.
        :param goal: (2,) metres, the goal square's centre in ``world``.
        :return: (H, W, 3) uint8 rgb8 image, H = W = ``geometry.image_size``.
        """
        cfg, style, canvas = self.geometry, self.style, self._canvas
        if self.supersample == 1:
            np.copyto(canvas, self._background)
        for top, bottom, left, right in self._drawn:
            canvas[top:bottom, left:right] = self._background[top:bottom, left:right]
        half = cfg.goal_size_m / 2.0
        goal_x, goal_y = np.asarray(goal, dtype=np.float64).tolist()
        u0, v0 = self._to_canvas(goal_x - half, goal_y + half)
        u1, v1 = self._to_canvas(goal_x + half, goal_y - half)
        # Fill the goal as a polygon so that its edges keep their sub-pixel position.
        polygon = np.array([[u0, v0], [u1, v0], [u1, v1], [u0, v1]], dtype=np.int32)
        cv2.fillConvexPoly(canvas, polygon, style.goal, cv2.LINE_AA, self._shift)
        elbow, fingertip = forward_kinematics(joint_positions, cfg.upper_arm_length_m,
                                              cfg.forearm_length_m)
        shoulder_px = self._to_canvas(0.0, 0.0)
        elbow_px = self._to_canvas(*elbow.tolist())
        tip_px = self._to_canvas(*fingertip.tolist())
        width = self._line_width
        cv2.line(canvas, shoulder_px, elbow_px, style.upper_arm, width, cv2.LINE_AA,
                 self._shift)
        cv2.line(canvas, elbow_px, tip_px, style.forearm, width, cv2.LINE_AA, self._shift)
        cv2.circle(canvas, shoulder_px, (width << self._shift) // 2 + 1, style.hub,
                   -1, cv2.LINE_AA, self._shift)
        frame: Any
        if self.supersample == 1:
            frame = canvas.copy()
        else:
            # Averaged down (INTER_AREA at a whole factor: each output pixel the mean of its
            # block) only where this frame drew; elsewhere the canvas is the background,
            # whose averaged-down copy is kept: the same frame as resizing the whole canvas
            # for a third of the cost, and the next frame restores only these regions.
            self._drawn = [self._drawn_region((u0, u1), (v0, v1), 0),
                           self._drawn_region((shoulder_px[0], elbow_px[0], tip_px[0]),
                                              (shoulder_px[1], elbow_px[1], tip_px[1]), width)]
            frame = self._small_background.copy()
            step = self.supersample
            for top, bottom, left, right in self._drawn:
                if bottom > top and right > left:
                    frame[top // step:bottom // step, left // step:right // step] = cv2.resize(
                        canvas[top:bottom, left:right],
                        ((right - left) // step, (bottom - top) // step),
                        interpolation=cv2.INTER_AREA)
        if self.scene.clean:
            return cast(npt.NDArray[np.uint8], frame)
        return self._apply_scene(frame)

    def _drawn_region(self, u: tuple[int, ...], v: tuple[int, ...], width: int
                      ) -> tuple[int, int, int, int]:
        """The canvas region that shapes through fixed-point points can touch.

        :param u: canvas columns of the shape's points, fixed point (shift bits).
        :param v: canvas rows, the same.
        :param width: the line width (canvas pixels); 0 for a filled polygon.
        :return: (top, bottom, left, right), whole output pixels, within the canvas.
        """
        # Half the width, the hub's radius beyond it and anti-aliasing's pixel each side,
        # with room to spare.
        margin = width // 2 + 4
        step, limit = self.supersample, self._canvas.shape[0]
        shift = self._shift
        top = max(0, ((min(v) >> shift) - margin) // step * step)
        left = max(0, ((min(u) >> shift) - margin) // step * step)
        bottom = min(limit, -(-((max(v) >> shift) + margin + 1) // step) * step)
        right = min(limit, -(-((max(u) >> shift) + margin + 1) // step) * step)
        return top, bottom, left, right

    def _apply_scene(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The scene's per-frame effects on an output-size frame, in family order."""
        scene, size = self.scene, frame.shape[0]
        self._frame_index += 1
        if scene.mover is not None:
            x, y, vx, vy, colour = scene.mover
            # Bounce between the frame's edges: a triangle wave of the travelled distance.
            u = 1.0 - abs((x + vx * self._frame_index) % 2.0 - 1.0)
            v = 1.0 - abs((y + vy * self._frame_index) % 2.0 - 1.0)
            shift = self._shift
            cv2.circle(frame, (int(u * (size - 1) * 16), int(v * (size - 1) * 16)),
                       2 << shift, colour, -1, cv2.LINE_AA, shift)
        out: Any = frame.astype(np.float32)
        if self._light is not None:
            out *= self._light
        if self._warp is not None:
            out = cv2.warpAffine(out, self._warp, (size, size), flags=cv2.INTER_LINEAR,
                                 borderMode=cv2.BORDER_REPLICATE)
        if scene.blur_sigma_px > 0.0:
            out = cv2.GaussianBlur(out, (0, 0), scene.blur_sigma_px)
        if scene.noise_std > 0.0:
            noise = self._noise_rng.standard_normal(out.shape, dtype=np.float32)
            out += noise * np.float32(scene.noise_std)
        frame = np.clip(out, 0.0, 255.0).astype(np.uint8)
        if scene.jpeg_quality < 100:
            ok, data = cv2.imencode('.jpg', frame[:, :, ::-1],
                                    (cv2.IMWRITE_JPEG_QUALITY, scene.jpeg_quality))
            decoded: Any = cv2.imdecode(data, cv2.IMREAD_COLOR) if ok else None
            if decoded is not None:
                frame = np.ascontiguousarray(decoded[:, :, ::-1])
        return cast(npt.NDArray[np.uint8], frame)
