"""The redraw check: does the frame show the arm and goal where the estimate puts them.

An estimate can be wrong and sure: SLAC's confidence comes from the same encoder features
as the estimate, so a frame that fools the encoder (a goal read on a distractor, an arm
under strong coloured light and JPEG) can fool its confidence too. The redraw check is a
second, independent view, analysis by synthesis: draw the estimate with the scene's arm
model (:class:`reacher_sim.render.ArmRenderer`, the clean scene's colours) and measure
which share of the drawn arm, hub and goal pixels the frame, its table repainted by
:class:`reacher_perception.background.BackgroundNormalizer`, shows as something other than
table. Objects on the table that the estimate does not explain (distractors) do not lower
it; an arm or goal drawn where the frame shows bare table does, as does a covered arm.

Measured on 20 held-out sequences per scene (docs/slac.md, "Fifth pass"): the share is
0.94 (median) on right estimates in every scene, 5% of them below 0.71-0.89, and 0.68 on
the wrong ones of ``randomized``; :func:`support` maps it to a cap on the confidence.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from reacher_common.geometry import ArmGeometry
from reacher_perception.background import l1_distance
from reacher_sim.render import ArmRenderer, RenderStyle

DRAWN_L1 = 90.0
"""L1 distance (0-255 units over R, G, B) from the table above which a drawn pixel is part
of the arm, hub or goal (their anti-aliased rims are not)."""
SEEN_L1 = 60.0
"""L1 distance from the table above which a pixel of the repainted frame is not table
(above sensor noise of std 12; an arm darkened by the scenes' least light still is)."""
SUPPORT_LOW = 0.6
"""Share of the drawn pixels seen at and below which the estimate has no support."""
SUPPORT_HIGH = 0.8
"""Share at and above which it has full support (5% of right estimates fall below it)."""


class RedrawCheck:
    """Share of an estimate's drawn arm, hub and goal that a repainted frame shows.

    :param geometry: the arm and camera the frames show.
    :param style: the clean scene's colours (the table the frame was repainted in).
    """

    def __init__(self, geometry: ArmGeometry, style: RenderStyle | None = None) -> None:
        self.style = style or RenderStyle()
        self.renderer = ArmRenderer(geometry, self.style)
        size = geometry.image_size
        self._table = np.empty((size, size, 3), dtype=np.uint8)
        self._table[:] = self.style.background

    def _not_table(self, frame: npt.NDArray[np.uint8], above: float) -> npt.NDArray[np.bool_]:
        return l1_distance(frame, self._table) > above

    def __call__(self, repainted: npt.NDArray[np.uint8], joint_positions: npt.ArrayLike,
                 goal: npt.ArrayLike) -> float:
        """The share of the drawn estimate that the frame shows, in [0, 1].

        :param repainted: (H, W, 3) uint8 rgb8, the frame with its table repainted in
            ``style.background``.
        :param joint_positions: (2,) radians, the estimate.
        :param goal: (2,) metres in ``world``, the estimate.
        :return: shown drawn pixels / drawn pixels.
        """
        drawn = self._not_table(self.renderer.render(joint_positions, goal), DRAWN_L1)
        seen = self._not_table(repainted, SEEN_L1)
        return float(np.count_nonzero(drawn & seen)) / max(int(np.count_nonzero(drawn)), 1)


def support(share: float) -> float:
    """The cap a redraw share puts on the confidence.

    0 at ``SUPPORT_LOW``, 1 at ``SUPPORT_HIGH``, linear between.

    :param share: from :class:`RedrawCheck`, in [0, 1].
    :return: in [0, 1].
    """
    return min(max((share - SUPPORT_LOW) / (SUPPORT_HIGH - SUPPORT_LOW), 0.0), 1.0)
