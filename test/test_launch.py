"""launch_pytest test of launch/bringup.launch.py (needs a ROS 2 install).

launch, launch_ros and launch_pytest are not on PyPI; on a ROS 2 Jazzy install with this
package built by colcon, this test starts the real launch file and checks the loop.
"""

from pathlib import Path

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

from ros_support import Collector  # noqa: E402

LAUNCH_FILE = Path(__file__).resolve().parent.parent / 'launch' / 'bringup.launch.py'
EXECUTABLES = ('sim_node', 'perception_node', 'policy_node')
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
