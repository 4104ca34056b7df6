"""launch/bringup.launch.py on a ROS 2 install: launch_pytest tests and ``ros2 launch``.

launch, launch_ros and launch_pytest are not on PyPI; on a ROS 2 Jazzy install with this
package built by colcon, these tests start the real launch file and check the loop, its
namespace argument, and how it ends: a core node that dies ends it, Ctrl-C twice ends it
cleanly, and ``rviz:=true`` without rviz2 fails before any node starts.
"""

import os
from pathlib import Path
import re
import shutil
import signal
import subprocess
import time

import pytest

launch_pytest = pytest.importorskip(
    'launch_pytest',
    reason='launch_pytest is not installed: it comes with a ROS 2 install '
           '(apt install ros-jazzy-launch-pytest), not from PyPI; the same nodes and '
           'parameter files are covered by test_integration.py')

from ament_index_python.packages import (  # noqa: E402
    get_package_prefix,
    PackageNotFoundError,
)
from diagnostic_msgs.msg import DiagnosticArray  # noqa: E402
import launch  # noqa: E402
from launch.launch_description_sources import PythonLaunchDescriptionSource  # noqa: E402
import rclpy  # noqa: E402
from std_msgs.msg import Float64MultiArray  # noqa: E402

from ros_support import Collector, get_parameters  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parent.parent / 'launch' / 'bringup.launch.py'
EXECUTABLES = ('sim_node', 'perception_node', 'policy_node', 'perception_policy')
pytestmark = [pytest.mark.ros, pytest.mark.slow]


def _missing_install() -> str | None:
    """Why the launch file cannot run here, or None.

    The launch file reads its config from the package's share directory and launch_ros
    finds the nodes in lib/reacher: both exist only once the package is built by colcon
    and its install/setup.bash is sourced. Without them launch_pytest would wait for
    ReadyToTest forever, so check first.
    """
    try:
        prefix = Path(get_package_prefix('reacher'))
    except (PackageNotFoundError, OSError) as error:  # OSError: AMENT_PREFIX_PATH unset
        return f'reacher is not in the ament index ({error})'
    missing = [name for name in EXECUTABLES if not (prefix / 'lib' / 'reacher' / name).exists()]
    if missing:
        return f'{prefix}/lib/reacher lacks {", ".join(missing)}'
    return None


_why = _missing_install()
if _why:
    pytest.skip(f'{_why}: build the package with colcon and source install/setup.bash',
                allow_module_level=True)


@launch_pytest.fixture
def bringup():
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE))),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=bringup)
def test_bringup_reaches_goals():
    rclpy.init()
    collector = Collector('launch_test_collector')
    try:
        collector.listen('/joint_commands', Float64MultiArray)
        collector.listen('/diagnostics', DiagnosticArray)

        def reached():
            for array in collector.messages['/diagnostics']:
                for status in array.status:
                    if status.name.startswith('sim_node'):
                        values = {kv.key: kv.value for kv in status.values}
                        if int(values['goals_reached']) >= 2:
                            return True
            return False

        assert collector.spin_until(reached, timeout=90)
        commands = collector.messages['/joint_commands']
        assert commands and all(len(m.data) == 2 for m in commands)
    finally:
        collector.close()
        rclpy.try_shutdown()


@launch_pytest.fixture
def bringup_in_a_namespace():
    return launch.LaunchDescription([
        launch.actions.IncludeLaunchDescription(
            PythonLaunchDescriptionSource(str(LAUNCH_FILE)),
            launch_arguments={'namespace': 'arm1', 'seed': '3'}.items()),
        launch_pytest.actions.ReadyToTest(),
    ])


@pytest.mark.launch(fixture=bringup_in_a_namespace)
def test_bringup_in_a_namespace_applies_the_shipped_parameters():
    rclpy.init()
    collector = Collector('launch_test_namespace')
    try:
        collector.listen('/arm1/diagnostics', DiagnosticArray)

        def reached():
            return any(status.name.startswith('sim_node')
                       and int({kv.key: kv.value for kv in status.values}['goals_reached']) >= 2
                       for array in collector.messages['/arm1/diagnostics']
                       for status in array.status)

        assert collector.spin_until(reached, timeout=90)
        node = collector.node
        assert get_parameters(node, '/arm1/sim_node', ['dt', 'seed']) == {'dt': 0.05, 'seed': 3}
        assert get_parameters(node, '/arm1/policy_node', ['pid.kp']) == {'pid.kp': 2.5}
        topics = [name for name, _ in node.get_topic_names_and_types()]
        assert '/arm1/camera/image_raw' in topics and '/arm1/joint_commands' in topics
        assert '/camera/image_raw' not in topics and '/joint_commands' not in topics
    finally:
        collector.close()
        rclpy.try_shutdown()


# `ros2 launch` itself, as a user runs it -------------------------------------------------

ROS2 = shutil.which('ros2')
needs_ros2 = pytest.mark.skipif(ROS2 is None, reason='the ros2 command is not on PATH')


class Launch:
    """`ros2 launch reacher bringup.launch.py ARGS` in its own session, output to a file."""

    def __init__(self, log: Path, *arguments: str) -> None:
        self.log = log
        self._file = open(log, 'w')
        assert ROS2 is not None
        self.process = subprocess.Popen(
            [ROS2, 'launch', '--noninteractive', 'reacher', 'bringup.launch.py', *arguments],
            stdout=self._file, stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        self._file.flush()
        return self.log.read_text(errors='replace')

    def pids(self) -> dict[str, int]:
        """Node name -> pid, from launch's 'process started' lines."""
        return {name: int(pid) for name, pid in re.findall(
            r'\[(\w+)-\d+\]: process started with pid \[(\d+)\]', self.output())}

    def wait_for(self, condition, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if condition():
                return True
            time.sleep(0.2)
        return condition()

    def close(self) -> None:
        if self.process.poll() is None:  # SIGINT to launch only (ros2/launch#666: not TERM)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._file.close()


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie does not)."""
    try:
        return Path(f'/proc/{pid}/stat').read_text().split(') ')[-1][0] != 'Z'
    except (FileNotFoundError, ProcessLookupError):
        return False


@needs_ros2
def test_a_core_node_that_dies_ends_the_launch(tmp_path):
    run = Launch(tmp_path / 'launch.log', 'namespace:=dying', 'composed:=false')
    try:
        started = run.wait_for(lambda: len(run.pids()) == 3 and 'goal reached' in run.output(),
                               timeout=90)
        assert started, run.output()
        pids = run.pids()
        os.kill(pids['sim_node'], signal.SIGKILL)
        run.process.wait(30)
        assert not [name for name, pid in pids.items() if alive(pid)], run.output()
        assert 'was required: shutting down launched system' in run.output() or \
            'sim_node exited' in run.output(), run.output()
    finally:
        run.close()


@needs_ros2
def test_ctrl_c_twice_ends_the_launch_cleanly(tmp_path):
    """A terminal's Ctrl-C reaches every process of the group, and launch sends each node
    its own SIGINT too: every node gets two, and none may print a traceback."""
    run = Launch(tmp_path / 'launch.log', 'namespace:=ctrl_c')
    try:
        assert run.wait_for(lambda: 'goal reached' in run.output(), timeout=90), run.output()
        pids = run.pids()
        os.killpg(run.process.pid, signal.SIGINT)
        assert run.process.wait(30) == 0, run.output()
        assert not [name for name, pid in pids.items() if alive(pid)], run.output()
        output = run.output()
        assert 'Traceback' not in output, output
        # composed (the default): sim_node and perception_policy
        assert set(pids) == {'sim_node', 'perception_policy'}, output
        assert output.count('process has finished cleanly') == 2, output
    finally:
        run.close()


def _rviz2_installed() -> bool:
    try:
        get_package_prefix('rviz2')
    except (PackageNotFoundError, ValueError):
        return False
    return True


@needs_ros2
@pytest.mark.skipif(_rviz2_installed(), reason='rviz2 is installed here')
def test_rviz_without_rviz2_fails_before_any_node_starts(tmp_path):
    run = Launch(tmp_path / 'launch.log', 'rviz:=true')
    try:
        assert run.process.wait(60) != 0
        output = run.output()
        assert 'rviz2 is not installed' in output, output
        assert 'process started' not in output, output
    finally:
        run.close()
