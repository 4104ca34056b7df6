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

Plain Python (``os``), Linux only; no rclpy.
"""

from __future__ import annotations

import os

MAX_PRIORITY = 99
"""The highest SCHED_FIFO priority Linux accepts (``sched_get_priority_max``)."""


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
