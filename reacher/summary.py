"""What a ``reacher demo`` run measured: the summary, its JSON line and its printout.

:class:`Summary` is filled by ``reacher.monitor`` from the nodes' /diagnostics and the
commands the demo receives; :func:`combine` merges several loops' summaries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
import json
import math
from typing import Any


@dataclass
class Summary:
    """What a demo run measured (the ``--json`` line).

    With several loops, ``robots`` holds each loop's own summary and the top-level figures
    combine them: counts summed, success rate and mean time to goal over all their goals,
    the control rate averaged, latency, jitter and inference time of the worst loop.

    Timing: ``achieved_control_rate_hz`` counts /joint_commands as this process receives
    them; ``control_period_jitter_ms_p99`` is the 99th percentile of |period - configured
    period| between them, ms, so it includes DDS delivery; ``policy_period_jitter_ms_p99``
    is the policy's own figure where it reports one. ``latency_ms_p50`` / ``p99``
    is the policy's camera-to-command latency (image stamp to command computed).
    ``latency_stages_ms`` holds what the nodes report per stage on /diagnostics
    (``latency.<stage>_ms.p50`` / ``.p99``, see :func:`reacher.monitor.stage_latencies`):
    stage -> {'node', 'p50', 'p99'} in ms, empty while the nodes report none.
    ``command_accel_rms`` (rad/s^2) and ``command_jerk_rms`` (rad/s^3): the commands'
    smoothness (:func:`reacher.monitor.smoothness`). ``control_mode``: what the policy's
    diagnostics call its mode ('' if they do not). ``estimator`` and ``controller``: what
    perception and policy report they ran on /diagnostics (what was asked, if they did
    not report). ``scheduling``: each node's thread scheduling as its /diagnostics report
    it ('fifo 50', or 'other 0' where SCHED_FIFO was refused or ``thread_priority`` is 0).
    ``stale_stops``, ``confidence_stops`` and ``corroborated_commands``: the policy's
    counts (docs/ros.md: stops for a stale or an unsure estimate; commands that acted on an
    unsure estimate that dead reckoning corroborated).
    """

    estimator: str
    controller: str
    duration_s: float
    namespace: str = '/'
    scene: str = 'clean'
    goals_reached: int = 0
    goals_timed_out: int = 0
    success_rate: float = math.nan
    mean_time_to_goal_s: float = math.nan
    configured_control_rate_hz: float = math.nan
    achieved_control_rate_hz: float = math.nan
    camera_rate_hz: float = math.nan
    control_period_jitter_ms_p99: float = math.nan
    policy_period_jitter_ms_p99: float = math.nan
    command_accel_rms: float = math.nan
    command_jerk_rms: float = math.nan
    control_mode: str = ''
    latency_ms_p50: float = math.nan
    latency_ms_p99: float = math.nan
    perception_inference_ms_p50: float = math.nan
    latency_stages_ms: dict[str, dict[str, Any]] = field(default_factory=dict)
    deadline_misses: int = 0
    stale_stops: int = 0
    confidence_stops: int = 0
    corroborated_commands: int = 0
    scheduling: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, int | None] = field(default_factory=dict)
    robots: list[Summary] = field(default_factory=list)


def combine(summaries: list[Summary], namespace: str) -> Summary:
    """The top-level summary of several loops (see :class:`Summary`)."""
    first = summaries[0]
    total = Summary(first.estimator, first.controller, first.duration_s, namespace,
                    scene=first.scene, robots=summaries)
    total.goals_reached = sum(s.goals_reached for s in summaries)
    total.goals_timed_out = sum(s.goals_timed_out for s in summaries)
    finished = total.goals_reached + total.goals_timed_out
    total.success_rate = total.goals_reached / finished if finished else math.nan
    timed = [(s.goals_reached, s.mean_time_to_goal_s) for s in summaries
             if s.goals_reached and math.isfinite(s.mean_time_to_goal_s)]
    if timed:
        total.mean_time_to_goal_s = (sum(n * t for n, t in timed)
                                     / sum(n for n, _ in timed))
    total.configured_control_rate_hz = first.configured_control_rate_hz
    total.camera_rate_hz = first.camera_rate_hz
    total.achieved_control_rate_hz = _mean([s.achieved_control_rate_hz for s in summaries])
    total.latency_ms_p50 = _worst([s.latency_ms_p50 for s in summaries])
    total.latency_ms_p99 = _worst([s.latency_ms_p99 for s in summaries])
    total.control_period_jitter_ms_p99 = _worst(
        [s.control_period_jitter_ms_p99 for s in summaries])
    total.control_mode = first.control_mode
    total.policy_period_jitter_ms_p99 = _worst([s.policy_period_jitter_ms_p99 for s in summaries])
    total.command_accel_rms = _worst([s.command_accel_rms for s in summaries])
    total.command_jerk_rms = _worst([s.command_jerk_rms for s in summaries])
    for stage in first.latency_stages_ms:
        figures = [s.latency_stages_ms.get(stage, {}) for s in summaries]
        total.latency_stages_ms[stage] = {
            key: value if key == 'node' else _worst([f.get(key, math.nan) for f in figures])
            for key, value in first.latency_stages_ms[stage].items()}
    total.perception_inference_ms_p50 = _worst(
        [s.perception_inference_ms_p50 for s in summaries])
    total.deadline_misses = sum(s.deadline_misses for s in summaries)
    total.stale_stops = sum(s.stale_stops for s in summaries)
    total.confidence_stops = sum(s.confidence_stops for s in summaries)
    total.corroborated_commands = sum(s.corroborated_commands for s in summaries)
    total.nodes = {name: code for s in summaries for name, code in s.nodes.items()}
    return total


def _mean(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return sum(finite) / len(finite) if finite else math.nan


def _worst(values: list[float]) -> float:
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else math.nan


def print_summary(summary: Summary, as_json: bool) -> None:
    """Print the human summary (one block per loop), and the JSON line last when asked."""
    print(f'\nReacher demo, {summary.duration_s:.0f} s from pixels:')
    for each in summary.robots or [summary]:
        if summary.robots:
            print(f'{each.namespace}:')
        _print_rows(each)
    if summary.robots:
        print(f'all {len(summary.robots)}: {summary.goals_reached} goals reached '
              f'(timed out: {summary.goals_timed_out}), success rate '
              f'{summary.success_rate:.1%}')
    if as_json:
        print(json.dumps(_finite(asdict(summary))), flush=True)


def _print_rows(summary: Summary) -> None:
    rows = [
        ('estimator / controller', f'{summary.estimator} / {summary.controller}'),
        ('scene', summary.scene),
        ('goals reached', f'{summary.goals_reached} (timed out: {summary.goals_timed_out})'),
        ('success rate', f'{summary.success_rate:.1%}'),
        ('mean time to goal', f'{summary.mean_time_to_goal_s:.2f} s'),
        ('control rate', f'{summary.achieved_control_rate_hz:.2f} Hz achieved / '
                         f'{summary.configured_control_rate_hz:.1f} Hz configured'),
        ('camera rate', f'{summary.camera_rate_hz:.1f} Hz'),
        ('camera-to-command latency', f'p50 {summary.latency_ms_p50:.1f} ms, '
                                      f'p99 {summary.latency_ms_p99:.1f} ms'),
        ('control period jitter', f'p99 {summary.control_period_jitter_ms_p99:.2f} ms'),
        ('node scheduling', ', '.join(sorted(set(summary.scheduling.values()))) or '?'),
        *((f'  {stage}', f'p50 {figures.get("p50", math.nan):.2f} ms, '
                         f'p99 {figures.get("p99", math.nan):.2f} ms')
          for stage, figures in summary.latency_stages_ms.items()),
    ]
    width = max(len(key) for key, _ in rows)
    for key, value in rows:
        print(f'  {key:<{width}}  {value}')


def _finite(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value

