"""Bring up the camera-in-the-loop reacher: sim, perception and policy nodes.

    ros2 launch reacher bringup.launch.py [namespace:=NS] [robots:=N]
        [estimator:=slac|classical] [controller:=ik|learned|slac] [seed:=N] [scene:=NAME]
        [composed:=true|false] [use_sim_time:=true]
        [params_file:=FILE] [log_level:=debug|info|warn|error] [multi_host:=true] [rviz:=true]

The parameter files are the package's config/*.yaml, the same ones ``reacher demo`` uses
(reacher/bringup.py): each node's own file (keyed ``/**/<node>``, so it applies in any
namespace), then config/geometry.yaml (the arm, once, for every node, under ``/**``), then
``params_file``, then the launch arguments. The order matters: rcl applies a node's parameter
sections in the order they first appear, so in ``params_file`` put node keys under
``/**/<node>:`` and geometry keys under ``/**:`` as the shipped files do.

``composed:=true`` (the default, as ``reacher demo``) runs perception_node and policy_node in
one process, ``perception_policy`` (reacher/composed.py), the estimate handed over
in-process; ``composed:=false`` runs each node in its own process.

``robots:=N`` starts N loops in <namespace>/arm1 ... /armN (seeds ``seed`` + index). Any core
node that exits ends the whole launch. DDS stays on loopback (config/fastdds_loopback.xml)
unless ``multi_host:=true`` or the caller set FASTRTPS_DEFAULT_PROFILES_FILE (reacher/dds.py).
"""

import os

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, SetEnvironmentVariable, Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from reacher.bringup import (
    COMPOSED,
    NODES,
    parameter_files,
    qualified,
    robot_namespaces,
    rviz_remappings,
)
from reacher.dds import dds_environment
from reacher_common.paths import config_file
from reacher_perception.config import PerceptionConfig

ARGUMENTS = (
    ('namespace', '', 'ROS namespace of the loop (of the loops, with robots > 1); '
                      "'' = the root namespace"),
    ('robots', '1', 'how many complete loops to run, in <namespace>/arm1, /arm2, ...'),
    ('estimator', PerceptionConfig.estimator, 'perception backend: slac (the shipped SLAC '
                                              'model) or classical (the OpenCV baseline)'),
    ('controller', 'ik', 'policy controller: ik, learned or slac'),
    ('seed', '0', 'goal sampling seed (robot i, from 0, gets seed + i)'),
    ('scene', 'clean', 'what the camera sees: clean, background, texture, lighting, '
                       'distractors, camera, blur, noise, jpeg or randomized'),
    ('composed', 'true', 'perception and policy in one process (perception_policy), the '
                         'estimate handed over in-process; false: a process per node'),
    ('use_sim_time', 'false', 'sim_node publishes /clock (per namespace with robots > 1) '
                              'and every node runs on it'),
    ('params_file', '', 'a parameter file given to every node after the shipped ones '
                        '(keys under /**/<node_name>: or /**:)'),
    ('log_level', 'info', 'log level of the nodes: debug, info, warn, error or fatal'),
    ('multi_host', 'false', 'DDS over the network (config/fastdds_multihost.xml, discovery '
                            'range SUBNET, ROS_STATIC_PEERS) instead of loopback only'),
    ('rviz', 'false', 'open rviz2 with config/reacher.rviz (on the first loop)'),
)
LOG_LEVELS = ('debug', 'info', 'warn', 'error', 'fatal')


def generate_launch_description():
    return LaunchDescription([
        *(DeclareLaunchArgument(name, default_value=default, description=description)
          for name, default, description in ARGUMENTS),
        OpaqueFunction(function=launch_setup),
    ])


def launch_setup(context):
    """Check every argument, then return the actions; raise before any node starts."""
    def argument(name):
        return LaunchConfiguration(name).perform(context).strip()

    def flag(name):
        value = argument(name).lower()
        if value not in ('true', 'false'):
            raise ValueError(f"{name}:={argument(name)} must be 'true' or 'false'")
        return value == 'true'

    try:
        robots, seed = int(argument('robots')), int(argument('seed'))
    except ValueError as error:
        raise ValueError(f'robots and seed must be integers ({error})') from None
    namespaces = robot_namespaces(argument('namespace'), robots)
    use_sim_time, multi_host, rviz = flag('use_sim_time'), flag('multi_host'), flag('rviz')
    processes = ('sim_node', *COMPOSED) if flag('composed') else NODES
    log_level = argument('log_level')
    if log_level.lower() not in LOG_LEVELS:
        raise ValueError(f'log_level:={log_level} must be one of {", ".join(LOG_LEVELS)}')
    params_file = argument('params_file')
    if params_file and not os.path.isfile(params_file):
        raise FileNotFoundError(f'params_file:={params_file} is not a file')
    if rviz and not _rviz2_installed():
        # Before any node starts: launch_ros would fail on rviz2 only after the loop started.
        raise RuntimeError('rviz:=true, but rviz2 is not installed (apt install '
                           'ros-jazzy-rviz2, then source the ROS setup again); or run '
                           'without rviz:=true and watch with reacher demo')

    actions = [SetEnvironmentVariable(name, value)
               for name, value in dds_environment(context.environment, multi_host).items()]
    overrides = {'sim_node': {'publish_clock': use_sim_time,
                              'scene.name': argument('scene')},
                 'perception_node': {'estimator': argument('estimator')},
                 'policy_node': {'controller': argument('controller')}}
    overrides['perception_policy'] = {**overrides['perception_node'],
                                      **overrides['policy_node']}
    # Several sims publishing /clock would fight over it: each loop gets its own.
    clock = [('/clock', 'clock')] if use_sim_time and robots > 1 else []
    extra = [params_file] if params_file else []
    for index, namespace in enumerate(namespaces):
        for name in processes:
            parameters = [*map(str, parameter_files(name)), *extra]
            values = {**overrides[name], 'use_sim_time': use_sim_time}
            if name == 'sim_node':
                values['seed'] = seed + index
            actions.append(Node(
                # A name would rename every node of a composed process: it keeps its own.
                package='reacher', executable=name, name=None if name in COMPOSED else name,
                namespace=None if namespace == '/' else namespace, output='screen',
                parameters=[*parameters, values], remappings=clock,
                ros_arguments=['--log-level', log_level.lower()],
                on_exit=Shutdown(reason=f'{qualified(namespace, name)} exited')))
    if rviz:
        remappings = [] if namespaces[0] == '/' else rviz_remappings()
        actions.append(Node(
            package='rviz2', executable='rviz2', name='rviz2', output='log',
            namespace=None if namespaces[0] == '/' else namespaces[0],
            arguments=['-d', str(config_file('reacher.rviz'))],
            parameters=[{'use_sim_time': use_sim_time}], remappings=remappings + clock))
    return actions


def _rviz2_installed():
    from ament_index_python.packages import get_package_prefix, PackageNotFoundError

    try:
        prefix = get_package_prefix('rviz2')
    except (PackageNotFoundError, ValueError):
        return False
    return os.path.exists(os.path.join(prefix, 'lib', 'rviz2', 'rviz2'))
