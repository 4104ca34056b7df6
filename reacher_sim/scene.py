"""What the camera sees around the arm: scenes that change the picture, never the task.

A real camera's picture changes with the room: another table, a textured floor, the sun
through a window, a cable across the view, a nudged camera, a dirty or cheap lens, a noisy
sensor, a compressed stream. :class:`SceneConfig` names such a change and its range;
:meth:`SceneConfig.sample` draws one :class:`Scene` from it (per episode or sequence, as a
room changes), and :class:`reacher_sim.render.ArmRenderer` draws the arm into it. The
ground truth (joint angles, goal, reward, success) never depends on the scene.

Families (``SCENE_FAMILIES``), each with its range in :class:`SceneConfig`:

============  ===============================================================
background    a flat background colour, kept ``background_min_contrast`` away
              from the arm's, the hub's and the goal's colours
texture       a smooth random pattern over the background, +-``texture_amplitude``
lighting      a global gain, a linear gradient across the frame (uneven
              light) and per-channel gains (colour balance)
distractors   thin lines and blobs on the table, and one small object that
              moves across the view; their colours keep the same contrast
camera        a small shift, roll and scale of the image (the camera nudged):
              the published CameraInfo is the nudged camera's (K and R; P the
              nominal camera), so perception rectifies the frame back, as
              image_proc does (reacher_common.camera_calibration). Kept small
              (1 px, 2 deg, 2%) all the same: an estimator that reads the raw
              frame still sees the shoulder at the hub, the joints to within
              the roll and the goal to within ~10 mm
blur          a gaussian blur (focus, motion)
noise         gaussian sensor noise, drawn anew every frame
jpeg          JPEG compression artefacts (a compressed camera stream)
============  ===============================================================

Named scenes (``SCENES``): ``clean`` (none), one per family, and ``randomized`` (all).
All randomness comes from the generator passed in (the env's ``np_random``, the sim
node's seeded generator), so a seed reproduces a scene.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
import math

import numpy as np
import numpy.typing as npt

from reacher_common.config_tools import check_fields

RGB = tuple[int, int, int]

SCENE_FAMILIES: tuple[str, ...] = (
    'background', 'texture', 'lighting', 'distractors', 'camera', 'blur', 'noise', 'jpeg')
"""The ways a scene can differ from the clean one, in the order they are applied."""

FAMILY_FIELDS: dict[str, tuple[str, ...]] = {
    'background': ('background',),
    'texture': ('texture_amplitude',),
    'lighting': ('gain', 'gradient', 'colour_gain'),
    'distractors': ('lines', 'blobs', 'mover'),
    'camera': ('shift_px', 'roll_deg', 'scale'),
    'blur': ('blur_sigma_px',),
    'noise': ('noise_std',),
    'jpeg': ('jpeg_quality',),
}
"""Family -> the fields of :class:`Scene` it sets."""

SCENES: dict[str, tuple[str, ...]] = {
    'clean': (),
    **{family: (family,) for family in SCENE_FAMILIES},
    'randomized': SCENE_FAMILIES,
}
"""Scene name -> the families it turns on."""


@dataclass(frozen=True)
class SceneConfig:
    """Which scene the camera sees, and the range each of its families is drawn from.

    Each field is a ROS parameter of sim_node under ``scene.`` (``scene.name``,
    ``scene.noise_std_max``); the gymnasium env takes it as ``SimConfig.scene``. The ranges
    apply only to the families that ``name`` turns on.

    :raises ValueError: from ``__post_init__``, naming the field that is out of range.
    """

    name: str = 'clean'
    """'clean', one family of ``SCENE_FAMILIES`` ('background', 'texture', 'lighting',
    'distractors', 'camera', 'blur', 'noise', 'jpeg') or 'randomized' (all of them)."""
    background_min_contrast: float = 100.0
    """Least RGB distance (0-255 units) of a drawn background or distractor colour from the
    arm's, hub's and goal's colours, in [0, 200]: a goal-green table would hide the goal
    from any estimator."""
    texture_amplitude: float = 30.0
    """Largest amplitude of the background pattern, 0-255 units, in [0, 127]."""
    texture_cells: int = 6
    """Cells across the frame of the random pattern (its spatial frequency), in [2, 64]."""
    gain_max: float = 0.35
    """Global light gain drawn in [1 - gain_max, 1 + gain_max], in [0, 0.9]."""
    gradient_max: float = 0.35
    """Uneven light: a linear ramp across the frame whose gain changes by up to this much
    from one edge to the centre, in [0, 0.9]."""
    colour_balance_max: float = 0.15
    """Per-channel gain drawn in [1 - c, 1 + c] (white balance), in [0, 0.9]."""
    distractor_lines_max: int = 2
    """Thin lines across the table, drawn 1 to this many, in [0, 10]."""
    distractor_blobs_max: int = 2
    """Round blobs on the table (2-4 px radius at 64 px), drawn 0 to this many, in [0, 10]."""
    moving_object: bool = True
    """One small disc (2 px radius at 64 px) moving across the view, over the arm."""
    shift_max_px: float = 1.0
    """Largest image shift of the camera family, pixels, in [0, 16] (the hub, drawn at the
    shoulder, shows it)."""
    roll_max_deg: float = 2.0
    """Largest camera roll, degrees, in [0, 10]; unrectified, it reads as a turned
    shoulder."""
    scale_max: float = 0.02
    """Image scale drawn in [1 - s, 1 + s], in [0, 0.5]."""
    blur_sigma_max_px: float = 1.0
    """Largest gaussian blur sigma, pixels at the output size, in [0, 5] (drawn from
    [0.3, max])."""
    noise_std_max: float = 12.0
    """Largest sensor noise std, 0-255 units, in [0, 100] (drawn from [2, max] per scene,
    the noise itself per frame)."""
    jpeg_quality_min: int = 20
    """Lowest JPEG quality, in [1, 100] (drawn from [min, min + 40], capped at 100)."""

    def __post_init__(self) -> None:
        check_fields(self, {
            'name': self.name in SCENES,
            'background_min_contrast': 0.0 <= self.background_min_contrast <= 200.0,
            'texture_amplitude': 0.0 <= self.texture_amplitude <= 127.0,
            'texture_cells': 2 <= self.texture_cells <= 64,
            'gain_max': 0.0 <= self.gain_max <= 0.9,
            'gradient_max': 0.0 <= self.gradient_max <= 0.9,
            'colour_balance_max': 0.0 <= self.colour_balance_max <= 0.9,
            'distractor_lines_max': 0 <= self.distractor_lines_max <= 10,
            'distractor_blobs_max': 0 <= self.distractor_blobs_max <= 10,
            'shift_max_px': 0.0 <= self.shift_max_px <= 16.0,
            'roll_max_deg': 0.0 <= self.roll_max_deg <= 10.0,
            'scale_max': 0.0 <= self.scale_max <= 0.5,
            'blur_sigma_max_px': 0.0 <= self.blur_sigma_max_px <= 5.0,
            'noise_std_max': 0.0 <= self.noise_std_max <= 100.0,
            'jpeg_quality_min': 1 <= self.jpeg_quality_min <= 100,
        })

    @property
    def families(self) -> tuple[str, ...]:
        """The families this scene turns on."""
        return SCENES[self.name]

    def sample(self, rng: np.random.Generator, avoid: tuple[RGB, ...] = ()) -> Scene:
        """Draw one scene from the ranges of the families that are on.

        Draws nothing from ``rng`` when the scene is ``clean``, so a clean env's random
        stream is the same as without scenes.

        :param rng: the only source of randomness.
        :param avoid: colours (RGB 0-255) that drawn background and distractor colours keep
            ``background_min_contrast`` away from (the arm's, hub's and goal's).
        :return: the scene's concrete values.
        """
        on = set(self.families)
        if not on:
            return Scene()

        def colour() -> RGB:
            for _ in range(100):
                candidate = rng.integers(0, 256, 3)
                if all(np.linalg.norm(candidate - np.asarray(c)) >= self.background_min_contrast
                       for c in avoid):
                    break
            return (int(candidate[0]), int(candidate[1]), int(candidate[2]))

        def spread(maximum: float) -> float:
            return float(rng.uniform(-maximum, maximum))

        scene = Scene(families=tuple(f for f in SCENE_FAMILIES if f in on),
                      seed=int(rng.integers(0, 2**31)))
        if 'background' in on:
            scene.background = colour()
        if 'texture' in on:
            scene.texture_amplitude = float(rng.uniform(0.5, 1.0)) * self.texture_amplitude
            scene.texture_cells = self.texture_cells
        if 'lighting' in on:
            angle = rng.uniform(-math.pi, math.pi)
            scene.gain = 1.0 + spread(self.gain_max)
            scene.gradient = (float(math.cos(angle)) * float(rng.uniform(0, self.gradient_max)),
                              float(math.sin(angle)) * float(rng.uniform(0, self.gradient_max)))
            scene.colour_gain = (1.0 + spread(self.colour_balance_max),
                                 1.0 + spread(self.colour_balance_max),
                                 1.0 + spread(self.colour_balance_max))
        if 'distractors' in on:
            lines = (int(rng.integers(1, self.distractor_lines_max + 1))
                     if self.distractor_lines_max else 0)
            ends = rng.uniform(0.0, 1.0, (lines, 4))
            scene.lines = tuple(((float(a), float(b), float(c), float(d)), colour())
                                for a, b, c, d in ends)
            scene.blobs = tuple(
                (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)),
                 float(rng.uniform(2.0, 4.0)), colour())
                for _ in range(int(rng.integers(0, self.distractor_blobs_max + 1))))
            if self.moving_object:
                heading = rng.uniform(-math.pi, math.pi)
                scene.mover = (float(rng.uniform(0, 1)), float(rng.uniform(0, 1)),
                               0.02 * float(math.cos(heading)), 0.02 * float(math.sin(heading)),
                               colour())
        if 'camera' in on:
            scene.shift_px = (spread(self.shift_max_px), spread(self.shift_max_px))
            scene.roll_deg = spread(self.roll_max_deg)
            scene.scale = 1.0 + spread(self.scale_max)
        if 'blur' in on:
            scene.blur_sigma_px = float(rng.uniform(min(0.3, self.blur_sigma_max_px),
                                                    self.blur_sigma_max_px))
        if 'noise' in on:
            scene.noise_std = float(rng.uniform(min(2.0, self.noise_std_max),
                                                self.noise_std_max))
        if 'jpeg' in on:
            scene.jpeg_quality = int(rng.integers(self.jpeg_quality_min,
                                                  min(100, self.jpeg_quality_min + 40) + 1))
        return scene


@dataclass
class Scene:
    """One drawn scene: the concrete values the renderer applies (defaults: clean).

    Positions are fractions of the frame (0-1, x right, y down), sizes pixels at the
    output size, colours RGB 0-255.
    """

    families: tuple[str, ...] = ()
    seed: int = 0
    """Seed of what the scene draws itself: its texture and each frame's noise."""
    background: RGB | None = None
    texture_amplitude: float = 0.0
    texture_cells: int = 6
    gain: float = 1.0
    gradient: tuple[float, float] = (0.0, 0.0)
    colour_gain: tuple[float, float, float] = (1.0, 1.0, 1.0)
    lines: tuple[tuple[tuple[float, float, float, float], RGB], ...] = ()
    blobs: tuple[tuple[float, float, float, RGB], ...] = ()
    mover: tuple[float, float, float, float, RGB] | None = None
    shift_px: tuple[float, float] = (0.0, 0.0)
    roll_deg: float = 0.0
    scale: float = 1.0
    blur_sigma_px: float = 0.0
    noise_std: float = 0.0
    jpeg_quality: int = 100

    @property
    def clean(self) -> bool:
        """Whether the scene changes nothing."""
        return not self.families

    def without(self, *families: str) -> Scene:
        """The same scene with ``families`` off: their fields back at the clean values.

        The other families' values, and the seed of the texture and the noise, stay, so
        the frames differ from this scene's only by what those families did.

        :param families: names from ``SCENE_FAMILIES`` (one that is off changes nothing).
        :return: a new scene.
        :raises ValueError: for a name that is not a family.
        """
        unknown = [f for f in families if f not in FAMILY_FIELDS]
        if unknown:
            raise ValueError(f'not scene families: {unknown}; the families are '
                             f'{", ".join(SCENE_FAMILIES)}')
        clean = Scene()
        return replace(self, families=tuple(f for f in self.families if f not in families),
                       **{name: getattr(clean, name)
                          for f in families for name in FAMILY_FIELDS[f]})


def texture(size: int, cells: int, amplitude: float, seed: int
            ) -> npt.NDArray[np.float32]:
    """A smooth random pattern: cubic-upsampled random cells, one value per channel.

    :param size: output width = height, pixels.
    :param cells: random values across the frame.
    :param amplitude: largest absolute value.
    :param seed: seed of the cells.
    :return: (size, size, 3) float32 in [-amplitude, amplitude].
    """
    import cv2

    rng = np.random.default_rng(seed)
    grid = rng.uniform(-1.0, 1.0, (cells, cells, 3)).astype(np.float32)
    pattern = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)
    return np.clip(pattern, -1.0, 1.0) * np.float32(amplitude)
