"""Test-wide settings: every ROS process started by a test stays on loopback.

The DDS set-up is reacher/dds.py's default, as ``reacher demo`` and the launch file use it:
the loopback Fast DDS profile (every socket on 127.0.0.1) unless the caller set a profile
of their own, in which case discovery is still limited to LOCALHOST.
"""

import os

from reacher.dds import dds_environment

# Set before rclpy is imported anywhere, and inherited by every node process a test starts.
os.environ.update(dds_environment(os.environ))
if os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] != 'SYSTEM_DEFAULT':
    # The caller's own profile or RMW: keep discovery on this machine all the same.
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
