"""Test-wide settings: every ROS process started by a test stays on loopback."""

import os

# Set before rclpy is imported anywhere, and inherited by every node process a test starts.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(40 + os.getpid() % 50))
os.environ.setdefault('ROS_LOG_DIR', os.path.join(os.environ.get('TMPDIR', '/tmp'),
                                                  'reacher-ros-log'))

import pytest  # noqa: E402


@pytest.fixture(scope='module')
def rclpy_context():
    """rclpy initialised for the module's in-process test nodes."""
    import rclpy

    rclpy.init()
    yield
    rclpy.try_shutdown()


@pytest.fixture
def collector(rclpy_context):
    from ros_support import Collector

    node = Collector()
    yield node
    node.close()
