"""Pairing the parts of one camera frame's estimate by their stamp (plain Python).

Perception publishes a frame's joints, goal and status as separate messages with the
frame's ``header.stamp`` (``reacher_common.estimate_msgs.BUNDLE_TOPICS``); DDS delivers
each topic on its own, so the parts of frame k can arrive in any order and interleaved
with those of frame k+1. :class:`FrameBundler` keeps the parts by stamp and hands over a
frame once all its parts are in: the exact-time policy of ROS's message_filters, without
its dependency, and without ever pairing the joints of one frame with the goal of another.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RESTART_NS = 1_000_000_000
"""A part stamped this much (1 s) before the newest complete frame means the clock
restarted (a bag replayed from its start): the bundler forgets and starts over."""


class FrameBundler:
    """Collects the parts of each frame by stamp; returns a frame once it is complete.

    :param parts: the names of the parts a frame needs, e.g. ``('joints', 'goal',
        'status')``.
    :param max_pending: the most frames kept incomplete at once; beyond it the oldest is
        dropped (counted in :attr:`incomplete`), so a flood of stamps costs bounded memory.
    :raises ValueError: for no parts, repeated names, or ``max_pending`` < 1.

    Counters: :attr:`complete` (frames handed over), :attr:`incomplete` (frames dropped
    with a part missing: a newer frame completed first, or the pending limit), :attr:`late`
    (parts of a frame no newer than the last one handed over, dropped).
    """

    def __init__(self, parts: Sequence[str], max_pending: int = 8) -> None:
        if not parts or len(set(parts)) != len(parts) or max_pending < 1:
            raise ValueError(f'need distinct part names and max_pending >= 1, got {parts!r}, '
                             f'{max_pending}')
        self.parts = tuple(parts)
        self.max_pending = max_pending
        self._pending: dict[int, dict[str, Any]] = {}
        self._last_ns: int | None = None
        self.complete = 0
        self.incomplete = 0
        self.late = 0

    def reset(self) -> None:
        """Forget every pending part and the last frame handed over (counters stay)."""
        self.incomplete += len(self._pending)
        self._pending.clear()
        self._last_ns = None

    def add(self, part: str, stamp_ns: int, value: Any) -> dict[str, Any] | None:
        """Take one part of the frame stamped ``stamp_ns``.

        :param part: one of :attr:`parts`.
        :param stamp_ns: the frame's stamp, integer nanoseconds (``sec * 10**9 + nanosec``).
        :param value: the part (kept as given); a second part of the same name and stamp
            replaces the first.
        :return: the frame's parts by name when this part completed it, else None. The
            frames older than a completed one that are still incomplete are dropped
            (counted): the policy acts on the newest frame only.
        :raises ValueError: for a part name not in :attr:`parts`.
        """
        if part not in self.parts:
            raise ValueError(f'unknown part {part!r}; parts are {self.parts}')
        if self._last_ns is not None and stamp_ns <= self._last_ns:
            if self._last_ns - stamp_ns < RESTART_NS:
                self.late += 1
                return None
            self.reset()
        frame = self._pending.setdefault(stamp_ns, {})
        frame[part] = value
        if len(frame) == len(self.parts):
            for stamp in [stamp for stamp in self._pending if stamp <= stamp_ns]:
                if stamp != stamp_ns:
                    self.incomplete += 1
                del self._pending[stamp]
            self._last_ns = stamp_ns
            self.complete += 1
            return frame
        if len(self._pending) > self.max_pending:
            del self._pending[min(self._pending)]
            self.incomplete += 1
        return None
