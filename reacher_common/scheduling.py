"""Real-time scheduling of a node's threads: SCHED_FIFO at a priority, or the OS default.

A node on a loaded machine is woken late when the kernel's fair scheduler (SCHED_OTHER)
gives the core to something else first; each wake-up of a camera-to-command pipeline
(the sim's timer, each DDS hop, each executor) adds that delay to the tail of the
latency. Under SCHED_FIFO a thread that becomes ready preempts every SCHED_OTHER thread
at once. This is what ros2_control's controller_manager does for its control thread
(parameter ``thread_priority``, default 50, with a warning and the default scheduler
when the user may not: realtime_tools ``configure_sched_fifo``); here every thread of
the node's process gets it, the DDS threads included, since every one of them is on the
frame's path.

Measured on the 2-core machine, idle, ``reacher demo --headless --duration 30 --json``
(classical): camera-to-command p99 7.4 ms and command-period jitter p99 3.5 ms with the
default scheduler, 4.4-5.3 ms and 1.0-1.4 ms with every node (and the demo's monitor) at
SCHED_FIFO 50 (benchmarks/README.md, "Control timing").

The kernel's real-time throttling (``/proc/sys/kernel/sched_rt_runtime_us``, 0.95 s of
every second by default) keeps a real-time thread that spins from taking a core whole.

**CPU wake-up latency.** Between two frames every core of an idle machine halts; the
next frame's callbacks then start on a core the kernel must wake (on a VM, a halted vCPU
goes back to the host). A process that holds ``/dev/cpu_dma_latency`` open with a value
(Linux PM QoS, what cyclictest and tuned's latency-performance profile do) keeps every
core out of idle states slower to leave than that: 0 leaves only polling. The request
lasts while the file stays open, so the node holds it for its life
(:class:`CpuLatencyRequest`); the machine's cores then never halt while it runs (more
power, which a robot's control computer spends, a laptop running the demo may not want:
``cpu_dma_latency_us: -1``).

**Exact instants.** A timer's callback starts when the executor wakes, a little late
and by a varying amount; :func:`hold_until` waits for an exact instant instead (sleep,
then spin the last 0.2 ms), for the sim's steps and the policy's command release.

Plain Python (``os``, ``time``), Linux only; no rclpy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
import os
import struct
import time

from reacher_common.config_tools import bounded

MAX_PRIORITY = 99
"""The highest SCHED_FIFO priority Linux accepts (``sched_get_priority_max``)."""


@dataclass(frozen=True)
class NodeScheduling:
    """How a node's process is scheduled: the base of every node's config dataclass.

    So each node has these ROS parameters; ``reacher_common.ros_utils.run_node`` applies
    them once the node is built.
    """

    thread_priority: int = bounded(50, 0, MAX_PRIORITY)
    """SCHED_FIFO priority of every thread of the node's process, 1..99 (as ros2_control's
    ``thread_priority``), or 0 for the OS default scheduler; where the user may not use
    it (no ``rtprio`` limit or CAP_SYS_NICE) the node warns once and runs with the
    default. Read at start-up."""
    cpu_dma_latency_us: int = bounded(0, -1, 1_000_000)
    """The CPUs' wake-up latency this node requests while it runs (Linux PM QoS,
    ``/dev/cpu_dma_latency``), microseconds: 0 keeps idle cores polling, so a frame's
    callback never waits for a core to wake; -1 requests nothing. Root only: elsewhere the
    node warns once and runs. Read at start-up."""


def use_fifo_scheduling(priority: int) -> tuple[int, str]:
    """Put every thread of this process under SCHED_FIFO at ``priority``.

    Threads that the process starts later inherit the policy from the thread that starts
    them. ``priority`` 0 leaves the process as it is.

    :param priority: 0 (the OS default scheduler, nothing changes) or 1..99.
    :return: (threads changed, problem): the problem is '' on success or with priority
        0, else why it could not be used (e.g. ``Operation not permitted``: the user
        needs an ``rtprio`` limit, or CAP_SYS_NICE); threads already changed then stay.
    :raises ValueError: for a priority outside [0, 99].
    """
    if not 0 <= priority <= MAX_PRIORITY:
        raise ValueError(f'thread_priority must be in [0, {MAX_PRIORITY}], got {priority}')
    if priority == 0:
        return 0, ''
    if not hasattr(os, 'sched_setscheduler'):
        return 0, 'SCHED_FIFO is not available on this operating system'
    param = os.sched_param(priority)
    changed = 0
    try:
        tasks = os.listdir('/proc/self/task')
    except OSError:  # no /proc: the calling thread only
        tasks = ['0']
    for task in tasks:
        try:
            # On Linux the id is a thread's, and the call applies to that thread alone.
            os.sched_setscheduler(int(task), os.SCHED_FIFO, param)
        except ProcessLookupError:
            continue  # the thread ended meanwhile
        except OSError as error:
            return changed, error.strerror or str(error)
        changed += 1
    return changed, ''


def scheduling_of(thread_id: int) -> tuple[str, int]:
    """The policy name and priority of a thread (or process) of this machine.

    :param thread_id: a thread id (``/proc/<pid>/task/<tid>``) or 0 for the caller.
    :return: ('fifo' | 'rr' | 'other' | 'batch' | 'idle' | 'unknown', priority).
    :raises OSError: when the thread does not exist.
    """
    names = {os.SCHED_FIFO: 'fifo', os.SCHED_RR: 'rr', os.SCHED_OTHER: 'other',
             getattr(os, 'SCHED_BATCH', -10): 'batch', getattr(os, 'SCHED_IDLE', -11): 'idle'}
    policy = os.sched_getscheduler(thread_id)
    return names.get(policy, 'unknown'), os.sched_getparam(thread_id).sched_priority


CPU_DMA_LATENCY = '/dev/cpu_dma_latency'
"""Linux's PM QoS CPU latency request file (root only by default)."""


class CpuLatencyRequest:
    """Hold a PM QoS request on the CPUs' wake-up latency while this object lives.

    :param latency_us: the largest wake-up latency to allow, microseconds (0: cores only
        poll when idle), or -1 to request nothing.
    :raises ValueError: for a latency below -1.
    """

    def __init__(self, latency_us: int) -> None:
        if latency_us < -1:
            raise ValueError(f'cpu_dma_latency_us must be -1 (none) or >= 0, got {latency_us}')
        self.latency_us = latency_us
        self.problem = ''
        """'' when the request holds (or none was asked), else why it could not be made."""
        self._fd: int | None = None
        if latency_us < 0:
            return
        try:
            self._fd = os.open(CPU_DMA_LATENCY, os.O_WRONLY)
            os.write(self._fd, struct.pack('i', latency_us))
        except OSError as error:
            self.close()
            self.problem = f'{CPU_DMA_LATENCY}: {error.strerror or error}'

    @property
    def held(self) -> bool:
        """Whether the request is in force."""
        return self._fd is not None

    def close(self) -> None:
        """Withdraw the request (closing the file does)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def hold_until(deadline_s: float, clock: Callable[[], float] = time.perf_counter,
               spin_s: float = 2e-4) -> None:
    """Return when ``clock()`` reaches ``deadline_s``: sleep, then spin the last ``spin_s``.

    A sleep ends tens of microseconds late on this VM even under SCHED_FIFO; spinning the
    last 0.2 ms makes the release exact to a few microseconds at a cost of at most 0.2 ms
    of CPU per command.

    :param deadline_s: the instant, seconds on ``clock``'s scale.
    :param clock: a monotonic clock, seconds.
    :param spin_s: how long before the deadline to stop sleeping and spin, seconds, >= 0.
    """
    remaining = deadline_s - clock()
    if remaining > spin_s:
        time.sleep(remaining - spin_s)
    while clock() < deadline_s:
        pass
