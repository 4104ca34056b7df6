"""The nodes' ``thread_priority``: SCHED_FIFO on every thread, off at 0, refused by name when
out of range, and a warning (not a failure) where the user may not use it; ``hold_until``."""

import os
from pathlib import Path
import shutil
import time

from diagnostic_msgs.msg import DiagnosticArray
import pytest
from sensor_msgs.msg import Image

from reacher_common.scheduling import (
    CPU_DMA_LATENCY,
    CpuLatencyRequest,
    hold_until,
    scheduling_of,
    use_fifo_scheduling,
)

from ros_support import latest_diagnostics, NodeProcess, ParameterClient, running

pytestmark = pytest.mark.ros


def thread_scheduling(pid: int) -> set[tuple[str, int]]:
    """(policy, priority) of every thread of a process."""
    found = set()
    for task in os.listdir(f'/proc/{pid}/task'):
        try:
            found.add(scheduling_of(int(task)))
        except OSError:
            continue  # the thread ended meanwhile
    return found


def may_use_fifo() -> bool:
    """Whether this user may put a thread under SCHED_FIFO (root, CAP_SYS_NICE or rtprio)."""
    import resource

    return os.geteuid() == 0 or resource.getrlimit(resource.RLIMIT_RTPRIO)[0] > 0


def scheduling_reported(collector, process: NodeProcess, expected: str) -> None:
    """Wait for the node's /diagnostics to report ``expected`` as its scheduling."""
    collector.listen('/diagnostics', DiagnosticArray)
    assert collector.spin_until(
        lambda: (latest_diagnostics(collector, 'sim_node') or {}).get('scheduling') == expected,
        timeout=30), (latest_diagnostics(collector, 'sim_node'), process.output())


def test_priority_out_of_range_is_refused():
    with pytest.raises(ValueError, match='thread_priority'):
        use_fifo_scheduling(100)
    with pytest.raises(ValueError, match='thread_priority'):
        use_fifo_scheduling(-1)
    assert use_fifo_scheduling(0) == (0, '')


@pytest.mark.skipif(not may_use_fifo(), reason='this user may not use SCHED_FIFO')
def test_every_thread_of_a_node_runs_fifo_by_default(tmp_path, collector):
    sim = NodeProcess('sim_node', tmp_path, 'sim.yaml')
    with running(sim):
        scheduling_reported(collector, sim, 'fifo 50')
        assert thread_scheduling(sim.process.pid) == {('fifo', 50)}, sim.output()
        assert 'SCHED_FIFO priority 50 on' in sim.output()
        # Read at start-up: a change at run time is refused, with a reason.
        parameters = ParameterClient(collector, 'sim_node')
        assert parameters.wait(), sim.output()
        result = parameters.set('thread_priority', 10)
        assert not result.successful and result.reason.strip()
        assert thread_scheduling(sim.process.pid) == {('fifo', 50)}


def test_priority_zero_leaves_the_default_scheduler(tmp_path, collector):
    sim = NodeProcess('sim_node', tmp_path, 'sim.yaml', {'thread_priority': 0})
    with running(sim):
        scheduling_reported(collector, sim, 'other 0')
        assert thread_scheduling(sim.process.pid) == {('other', 0)}, sim.output()


@pytest.mark.parametrize('node', ['sim_node', 'perception_node', 'policy_node'])
def test_a_bad_priority_stops_the_start_by_name(tmp_path, node):
    process = NodeProcess(node, tmp_path, f'{node.removesuffix("_node")}.yaml',
                          {'thread_priority': 100})
    with running(process):
        assert process.wait(timeout=60) == 2, process.output()
    lines = [line for line in process.output().splitlines() if line.strip()]
    assert len(lines) == 1 and 'thread_priority' in lines[0], lines


@pytest.mark.skipif(shutil.which('setpriv') is None or os.geteuid() != 0,
                    reason='needs root and util-linux setpriv to drop CAP_SYS_NICE')
def test_a_refused_priority_warns_and_the_node_runs(tmp_path, collector):
    # Root without CAP_SYS_NICE and with an rtprio limit of 0: what a plain user has.
    drop = ['setpriv', '--inh-caps=-sys_nice', '--bounding-set=-sys_nice', '--']
    sim = NodeProcess('sim_node', tmp_path, 'sim.yaml', {'cpu_dma_latency_us': -1}, prefix=drop,
                      env={'ROS_LOG_DIR': str(Path(tmp_path) / 'ros_log')})
    with running(sim):
        collector.listen('/camera/image_raw', Image)
        assert collector.spin_until(
            lambda: len(collector.messages['/camera/image_raw']) >= 5, timeout=30), sim.output()
        scheduling_reported(collector, sim, 'other 0')
        assert sim.alive()
        assert 'SCHED_FIFO refused (Operation not permitted)' in sim.output()
        assert thread_scheduling(sim.process.pid) == {('other', 0)}


def current_cpu_latency_us() -> int:
    """The machine's PM QoS CPU latency in force (the least of all requests)."""
    import struct

    with open(CPU_DMA_LATENCY, 'rb') as file:
        return struct.unpack('i', file.read(4))[0]


def test_a_cpu_latency_request_holds_while_open():
    with pytest.raises(ValueError, match='cpu_dma_latency_us'):
        CpuLatencyRequest(-2)
    none = CpuLatencyRequest(-1)
    assert not none.held and none.problem == ''
    request = CpuLatencyRequest(7)
    try:
        if os.geteuid() != 0:
            assert not request.held and CPU_DMA_LATENCY in request.problem
            return
        assert request.held and request.problem == ''
        assert current_cpu_latency_us() <= 7
    finally:
        request.close()
    assert not request.held


@pytest.mark.skipif(os.geteuid() != 0, reason='/dev/cpu_dma_latency is root only')
def test_a_node_holds_the_cpu_latency_it_is_given(tmp_path, collector):
    sim = NodeProcess('sim_node', tmp_path, 'sim.yaml')
    with running(sim):
        scheduling_reported(collector, sim, 'fifo 50')
        assert 'CPU wake-up latency held at 0 us' in sim.output()
        assert current_cpu_latency_us() == 0
    (tmp_path / 'quiet').mkdir()
    quiet = NodeProcess('sim_node', tmp_path / 'quiet', 'sim.yaml',
                        {'cpu_dma_latency_us': -1, 'thread_priority': 0})
    with running(quiet):
        scheduling_reported(collector, quiet, 'other 0')
        assert 'CPU wake-up latency' not in quiet.output()


def test_hold_until_returns_at_the_instant_and_not_before():
    for wait_s in (0.0, 1e-4, 3e-3):
        deadline = time.perf_counter() + wait_s
        hold_until(deadline)
        assert time.perf_counter() >= deadline
    ticks = iter([0.0, 0.0, 0.5, 0.9, 1.0, 1.1])  # a fake clock: spins until it reads 1.0
    hold_until(1.0, clock=lambda: next(ticks), spin_s=10.0)
    assert next(ticks) == 1.1
