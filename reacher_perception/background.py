"""Background normalisation: the table under the arm repainted in the colour the estimators know.

A new table, a textured floor or uneven light changes most of a frame's pixels and none of
the arm's or the goal's. Both estimators were built on the clean scene's dark table: the
classical fit unmixes each pixel against that colour, and SLAC's encoder, fine-tuned across
scenes, still reads a frame best when its table is the one it was trained on first (it was
sure of 82% of a new background's frames against 99% of the clean table's).

:class:`BackgroundNormalizer` estimates the table under every pixel as the median of a
window around it (the arm's links and the goal are thin and small beside the window, so
the median is the table there too), then moves each pixel that looks like that table to
the clean table's colour, in proportion to how much it looks like it::

    table = upsample(median_k(frame[::2, ::2]))          # the local table colour, k = 9
    d = |frame - table|_1                                 # L1 over R, G, B, 0-255 units
    keep = clip((d - low) / (high - low), 0, 1)           # 0: table, 1: arm, goal, object
    out = frame + (1 - keep) * (clean_table - table)

A pixel of the arm or the goal (at least ``background_min_contrast`` = 100 RGB units from
any table the scenes draw) keeps its colour; a table pixel, with its texture, light
gradient and noise, becomes the clean table plus what the median does not follow; an
anti-aliased edge pixel moves part of the way. What it cannot undo is said where it is
measured (docs/slac.md, "Fifth pass"): JPEG's colour bleeding into the arm, light and
colour balance on the arm itself, and distractors, which are kept like the arm.

The window is a fixed share of the frame (18 px of 64). A table whose colour changes
faster than that is only partly repainted: its pixels far from the window's median keep
their colour, as an object's do, and the estimators see them as before.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from reacher_sim.render import RenderStyle
from reacher_sim.scene import RGB

LOW_L1 = 30.0
"""L1 distance (0-255 units, summed over R, G, B) from the local table below which a pixel
is taken wholly as table: above sensor noise of std 12 (mean L1 ~29)."""
HIGH_L1 = 120.0
"""L1 distance at and above which a pixel is kept as it is (an object at the scenes'
least contrast, 100 RGB units Euclidean, is 100-173 L1)."""
STRIDE = 2
"""The median reads every STRIDE-th row and column (the table is smooth; 4x fewer pixels)."""
WINDOW_FRACTION = 9.0 / 32.0
"""Width of the median window as a share of the frame: 9 px at half resolution of 64 (18
px of the frame)."""


_CHANNEL_SUM = np.ones((1, 3), dtype=np.float32)


def l1_distance(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """Per-pixel L1 distance of two rgb8 frames over R, G, B, saturated at 255.

    :param a: (H, W, 3) uint8.
    :param b: (H, W, 3) uint8.
    :return: (H, W) uint8, |a - b| summed over the channels, at most 255 (the thresholds
        that read it are below that).
    """
    return np.asarray(cv2.transform(cv2.absdiff(a, b), _CHANNEL_SUM))


class BackgroundNormalizer:
    """Repaint the table of rgb8 frames in one colour (see the module docstring).

    :param image_size: width = height of the frames, pixels, >= 16.
    :param table: RGB 0-255 colour the table is repainted in (None: the clean scene's,
        ``reacher_sim.render.RenderStyle.background``).
    :raises ValueError: for an image size under 16.
    """

    def __init__(self, image_size: int, table: RGB | None = None) -> None:
        if image_size < 16:
            raise ValueError(f'image_size={image_size} must be >= 16 for background '
                             'normalisation')
        self.image_size = image_size
        small = image_size // STRIDE
        # OpenCV's median takes odd windows (uint8 frames: any size).
        self.window = max(3, int(small * WINDOW_FRACTION) // 2 * 2 + 1)
        self.table = np.asarray(RenderStyle().background if table is None else table,
                                dtype=np.float32)
        self._table_frame = np.empty((image_size, image_size, 3), dtype=np.float32)
        self._table_frame[:] = self.table
        self._scale = np.float32(1.0 / (HIGH_L1 - LOW_L1))

    def __call__(self, frame: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
        """The frame with its table repainted.

        :param frame: (H, W, 3) uint8 rgb8, H = W = ``image_size``.
        :return: a new (H, W, 3) uint8 frame.
        """
        size = self.image_size
        local = cv2.resize(
            cv2.medianBlur(np.ascontiguousarray(frame[::STRIDE, ::STRIDE]), self.window),
            (size, size), interpolation=cv2.INTER_LINEAR)
        # L1 over the channels, saturated at 255 (above HIGH_L1 it only has to be large).
        distance = l1_distance(frame, local).astype(np.float32)
        table_share = 1.0 - np.clip((distance - np.float32(LOW_L1)) * self._scale, 0.0, 1.0)
        shift = self._table_frame - local.astype(np.float32)
        shift *= cv2.merge((table_share, table_share, table_share))
        shift += frame
        shift += np.float32(0.5)  # round, not truncate
        return np.clip(shift, 0.0, 255.0, out=shift).astype(np.uint8)
