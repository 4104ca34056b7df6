"""When the policy computes a command, and how long each stage of a frame took (plain Python).

**Control timing.** :class:`PhaseLock` decides, at each event, whether the node computes
and publishes a command now. Two events exist: a frame's bundle is complete
(``FrameBundler``), and the node's control timer (period ``1 / control_rate_hz``) fires.

- ``phase_lock: false`` (free-running, the behaviour before issue 14): the timer alone
  commands, at a fixed rate, on the freshest estimate. The camera-to-command latency is
  the phase between the sim's and the policy's timers plus the pipeline, so it changes
  from run to run (24-38 ms p50 in three runs before; 56 ms p50 in the run below).
- ``phase_lock: true`` (the default): a complete bundle commands at once, and the node
  then resets its timer, so the timer's ticks fall at ``1, 2, ...`` control periods after
  the frame's command: the control clock is re-aligned to the frame clock at every frame.
  With the control rate ``m`` times the camera rate (``m`` = 1, 2, 3, ...: measured from
  the stamps of the frames, within 5%), ticks ``1 .. m-1`` command on the freshest
  estimate and tick ``m``, where the next frame is due, waits for it: the frame's bundle
  commands when it comes. If it has not come (a lost or late frame), every tick from
  ``m + 1`` on commands on the freshest estimate, tick ``2m`` in the frame's place (a
  watchdog: the stale and confidence stops act there), until a bundle re-locks it. The
  latency is then the pipeline alone and the command period the camera's, its jitter
  the pipeline's. With a control rate that is no multiple of the camera rate the node
  runs free (nothing to lock to) and says so.
- ``fixed_latency_ms`` (default 2.5; phase-locked, a frame's command only): the command,
  computed as soon as the bundle is complete, is held until that long after the frame's
  stamp and then published (``reacher_common.scheduling.hold_until``); one computed later
  leaves at once and counts as a late release. Commands then leave one camera period
  apart to microseconds whatever each frame's pipeline took, at a latency that is the
  same every frame: the Logical Execution Time of time-triggered control (Kirsch and
  Sokolova, "The Logical Execution Time Paradigm", 2012), where an output is released at
  a fixed time after its input, not when it happens to be ready. The hold is the part of
  the period the pipeline did not use, 0.1-0.5 ms at the median here.

Measured with ``python benchmarks/control_timing.py --duration 30`` (both modes in one
run, classical and SLAC; the shared 2-core machine with a training run and another loop
beside it, so every figure is pessimistic): phase-locked, total latency p50 / p99 9.1 /
15.4 ms (classical) and 10.6 / 21.8 ms (SLAC), of which the policy's wait is 0.08 ms;
free-running, 55.9 / 61.8 and 56.3 / 62.1 ms, of which the wait is 45 ms in that run's
phase. Both held 20.00 Hz. Locked, the command period inherits the spread of the
pipeline (and of the camera's own frame times). A timer at a fixed offset after each
frame's stamp alone would have to wait for the pipeline's p99 every frame, so the
command stays event-triggered, and the fixed latency only holds the commands that are
early.

On the idle machine (``python benchmarks/latency.py --done-when``, SCHED_FIFO, idle cores
polling): with three node processes and each command published when computed, p50 / p99
3.35-3.68 / 4.1-5.2 ms and command-period jitter p99 1.0-2.7 ms; the jitter was the
camera's as much as the pipeline's, as the sim stamped each frame when its late-woken
step ran (stamp periods p99 1.07 ms off 50 ms). With the sim's steps on their instants
(``step_wake_early_ms``: 0.03 ms), perception and policy composed, and 30 s demos,
classical: each command published when computed, p50 2.40-2.42 ms and jitter p99
0.96-1.04 ms; held to a fixed 2.5 ms, p50 2.65-2.71 ms and jitter p99 0.55-0.67 ms. The
issue's check with all of it (60 s, three runs per estimator): p50 2.68-2.72 ms, p99
3.41-3.59 ms, jitter p99 0.77-0.95 ms. Free-running: 19-48 ms p50.

**Stage timing.** :class:`StageTimes` keeps, for the first command of each frame, the
stage durations (ms) that /diagnostics reports as ``latency.<stage>_ms.p50`` / ``.p99``
(:data:`STAGES`).
"""

from __future__ import annotations

from collections import deque
import math
import statistics

STAGES = ('frame_to_perception', 'inference', 'perception_to_policy', 'policy_wait',
          'policy_compute', 'release_hold', 'command_publish', 'total')
"""The stages of one frame, in order; they add up to ``total``:

- ``frame_to_perception``: the frame's stamp to perception's image callback (the render,
  the image's DDS hop and perception's executor);
- ``inference``: perception's conversion of the image and its estimator;
- ``perception_to_policy``: the end of inference to the policy holding the frame's
  complete bundle (building and publishing the messages, their DDS hop, the policy's
  executor);
- ``policy_wait``: the complete bundle to the control instant (0 when phase-locked; up to
  a control period when free-running);
- ``policy_compute``: the controller and the PID smoother;
- ``release_hold``: the command held until ``fixed_latency_ms`` after the frame's stamp
  (0 when that is off or the command was computed later;
  ``reacher_common.scheduling.hold_until``);
- ``command_publish``: publishing /joint_commands;
- ``total``: the frame's stamp to the command's publication, the camera-to-command latency.
"""

LOCK_TOLERANCE = 0.05
"""How far the camera period may be from a whole number of control periods, relatively,
for the loop to lock to it."""


class PhaseLock:
    """Whether to command now: on a frame's bundle, or on a tick of the control timer.

    :param period_s: the control period ``1 / control_rate_hz``, seconds, > 0.
    :param locked: phase-lock to the frames (else the timer alone commands).
    :param window: how many frame periods the camera period is estimated from (median).
    :raises ValueError: for a period that is not positive and finite.
    """

    def __init__(self, period_s: float, locked: bool = True, window: int = 21) -> None:
        if not (math.isfinite(period_s) and period_s > 0.0):
            raise ValueError(f'period_s must be positive seconds, got {period_s!r}')
        self.period_s = period_s
        self.locked = locked
        self._frame_periods: deque[float] = deque(maxlen=window)
        self._last_stamp_s: float | None = None
        self._ticks = 0
        self._waited = False
        self.waits = 0
        """Ticks that waited for a due frame instead of commanding."""
        self.watchdog_commands = 0
        """Ticks that commanded at a frame's place because the frame had not come."""

    @property
    def frame_period_s(self) -> float | None:
        """The camera period, the median of the recent stamp differences, or None."""
        return statistics.median(self._frame_periods) if self._frame_periods else None

    @property
    def ticks_per_frame(self) -> int | None:
        """``m``, the control periods per camera period when locked to the frames, else None.

        None when free-running, before two frames, or when the camera period is not within
        :data:`LOCK_TOLERANCE` of a whole number (>= 1) of control periods.
        """
        frame_period = self.frame_period_s
        if not self.locked or frame_period is None:
            return None
        ratio = frame_period / self.period_s
        m = round(ratio)
        return m if m >= 1 and abs(ratio - m) <= LOCK_TOLERANCE * m else None

    @property
    def mode(self) -> str:
        """How the loop is timed now, for the log and /diagnostics.

        :return: 'free', 'locking' (locked, the camera period not known yet),
            'phase-locked' or 'free (camera period no multiple)'.
        """
        if not self.locked:
            return 'free'
        if self.frame_period_s is None:
            return 'locking'
        return 'phase-locked' if self.ticks_per_frame else 'free (camera period no multiple)'

    def on_bundle(self, stamp_s: float) -> bool:
        """Whether to command now that a frame's bundle is complete.

        :param stamp_s: the frame's stamp, seconds (the camera period is measured from
            consecutive stamps; a gap over 1 s, or a stamp going back, is not a period).
        :return: True when phase-locked (or still locking): the caller commands, then
            calls :meth:`commanded` with ``bundle=True`` and resets its timer.
        """
        if self._last_stamp_s is not None and 0.0 < stamp_s - self._last_stamp_s < 1.0:
            self._frame_periods.append(stamp_s - self._last_stamp_s)
        self._last_stamp_s = stamp_s
        return self.locked and (self.frame_period_s is None or self.ticks_per_frame is not None)

    def on_tick(self) -> bool:
        """Whether to command now that the control timer fired.

        :return: False only for the tick where, locked, the next frame is due and has not
            come yet (the first such tick since the last frame's command).
        """
        m = self.ticks_per_frame
        self._ticks += 1
        if m is None or self._ticks % m != 0:
            return True
        if not self._waited:
            self._waited = True
            self.waits += 1
            return False
        self.watchdog_commands += 1
        return True

    def commanded(self, bundle: bool) -> None:
        """Record a command; ``bundle``: it was a frame's (the timer was reset after it)."""
        if bundle:
            self._ticks = 0
            self._waited = False


class StageTimes:
    """The durations of each stage of :data:`STAGES`, ms, over the last ``window`` frames.

    :param window: how many frames are kept.
    """

    def __init__(self, window: int = 2000) -> None:
        self._samples: dict[str, deque[float]] = {stage: deque(maxlen=window)
                                                  for stage in STAGES}

    def add(self, **stages_ms: float) -> None:
        """One frame's stages (keywords of :data:`STAGES`), ms; nan ones are left out.

        :raises ValueError: for a name not in :data:`STAGES`.
        """
        for stage, value in stages_ms.items():
            if stage not in self._samples:
                raise ValueError(f'unknown stage {stage!r}; stages are {STAGES}')
            if math.isfinite(value):
                self._samples[stage].append(float(value))

    def count(self, stage: str = 'total') -> int:
        """How many frames the window holds for ``stage``."""
        return len(self._samples[stage])

    def percentile(self, stage: str, q: float) -> float:
        """The ``q``-th percentile (0-100, linear interpolation) of ``stage``, ms.

        :return: nan when the window is empty.
        """
        values = sorted(self._samples[stage])
        if not values:
            return math.nan
        position = (len(values) - 1) * q / 100.0
        low = math.floor(position)
        high = min(low + 1, len(values) - 1)
        return values[low] + (values[high] - values[low]) * (position - low)

    def summary(self) -> dict[str, float]:
        """``latency.<stage>_ms.p50`` and ``.p99`` for every stage (the /diagnostics keys)."""
        return {f'latency.{stage}_ms.{name}': self.percentile(stage, q)
                for stage in STAGES for name, q in (('p50', 50.0), ('p99', 99.0))}
