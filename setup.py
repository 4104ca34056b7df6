"""Setup for the ``reacher`` ament_python package (also installable with plain pip)."""

from glob import glob

from setuptools import find_packages, setup

package_name = 'reacher'

setup(
    name=package_name,
    version='0.1.0',
    packages=find_packages(exclude=['test', 'test.*', 'benchmarks']),
    data_files=[
        ('share/ament_index/resource_index/packages', ['resource/' + package_name]),
        ('share/' + package_name, ['package.xml']),
        ('share/' + package_name + '/launch', glob('launch/*.launch.py')),
        ('share/' + package_name + '/config', glob('config/*.yaml') + glob('config/*.rviz')
                                              + glob('config/*.xml')),
        ('share/' + package_name + '/checkpoints', glob('checkpoints/*')),
    ],
    # rclpy and the ROS messages come from the ROS distro (or, without one, from the
    # PyPI wheels in requirements/ros-pip.txt): never from install_requires, so that
    # `colcon build` on a ROS machine never pulls a second rclpy (docs/architecture.md).
    install_requires=[
        'setuptools',
        'numpy>=1.26',
        'gymnasium>=1.0',
        'opencv-python-headless>=4.8',
        'pyyaml',
        'tqdm',
        'matplotlib',
        'tyro>=0.8',
        'torch>=2.2',
        # the slac estimator's default runtime: its network exported at start (torch's
        # exporter needs onnx) and run by ONNX Runtime
        'onnx>=1.16',
        'onnxruntime>=1.17',
    ],
    extras_require={
        'viz': ['pyglet>=2.0'],
        'learn': ['stable-baselines3>=2.3', 'tensorboard', 'optuna'],
        'bags': ['rosbags>=0.10', 'rosbags-image>=0.10'],
        'test': ['pytest', 'pytest-timeout', 'ruff', 'mypy', 'types-PyYAML', 'import-linter'],
    },
    zip_safe=True,
    maintainer='Reacher developers',
    maintainer_email='reacher@example.com',
    description='Vision-perception and control pipeline for a 2-link arm over ROS 2.',
    license='Apache-2.0',
    entry_points={
        'console_scripts': [
            'reacher = reacher.cli:main',
            'sim_node = reacher_sim.node:main',
            'perception_node = reacher_perception.node:main',
            'policy_node = reacher_policy.node:main',
            'perception_policy = reacher.composed:main',
        ],
    },
)
