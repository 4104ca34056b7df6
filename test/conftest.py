"""Test-wide settings: every ROS process started by a test stays on loopback."""

import os

# Set before rclpy is imported anywhere, and inherited by every node process a test starts.
os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ.setdefault('ROS_DOMAIN_ID', str(40 + os.getpid() % 50))
os.environ.setdefault('ROS_LOG_DIR', os.path.join(os.environ.get('TMPDIR', '/tmp'),
                                                  'reacher-ros-log'))
