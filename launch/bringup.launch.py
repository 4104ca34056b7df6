"""Bring up the camera-in-the-loop reacher: sim, perception and policy nodes.

    ros2 launch reacher bringup.launch.py [estimator:=classical|slac] [controller:=ik|learned]
        [seed:=N] [rviz:=true]

The parameter files are the package's config/*.yaml, the same ones ``reacher demo`` uses:
each node's own file, then config/geometry.yaml (the arm, once, for every node), then the
launch arguments. The order matters: rcl applies a node's parameter sections in the order
they first appear, and the arguments join the ``/**`` section of config/geometry.yaml.
"""

import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, SetEnvironmentVariable
from launch.conditions import IfCondition
from launch.substitutions import EnvironmentVariable, LaunchConfiguration
from launch_ros.actions import Node
from launch_ros.parameter_descriptions import ParameterValue


def generate_launch_description():
    config = os.path.join(get_package_share_directory('reacher'), 'config')
    estimator = LaunchConfiguration('estimator')
    controller = LaunchConfiguration('controller')
    seed = LaunchConfiguration('seed')
    geometry = os.path.join(config, 'geometry.yaml')
    return LaunchDescription([
        DeclareLaunchArgument('estimator', default_value='classical',
                              description='perception backend: classical or slac'),
        DeclareLaunchArgument('controller', default_value='ik',
                              description='policy controller: ik or learned'),
        DeclareLaunchArgument('seed', default_value='0', description='goal sampling seed'),
        DeclareLaunchArgument('rviz', default_value='false',
                              description='open rviz2 with config/reacher.rviz'),
        # DDS stays on this machine unless the caller already chose a range.
        SetEnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE',
                               EnvironmentVariable('ROS_AUTOMATIC_DISCOVERY_RANGE',
                                                   default_value='LOCALHOST')),
        Node(package='reacher', executable='sim_node', name='sim_node', output='screen',
             parameters=[os.path.join(config, 'sim.yaml'), geometry,
                         {'seed': ParameterValue(seed, value_type=int)}]),
        Node(package='reacher', executable='perception_node', name='perception_node',
             output='screen',
             parameters=[os.path.join(config, 'perception.yaml'), geometry,
                         {'estimator': ParameterValue(estimator, value_type=str)}]),
        Node(package='reacher', executable='policy_node', name='policy_node', output='screen',
             parameters=[os.path.join(config, 'policy.yaml'), geometry,
                         {'controller': ParameterValue(controller, value_type=str)}]),
        Node(package='rviz2', executable='rviz2', name='rviz2', output='log',
             arguments=['-d', os.path.join(config, 'reacher.rviz')],
             condition=IfCondition(LaunchConfiguration('rviz'))),
    ])
