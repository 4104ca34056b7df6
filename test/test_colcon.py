"""colcon builds the package into a ROS-style install tree, and the installed nodes run."""

import os
from pathlib import Path
import shutil
import subprocess
import sys

import pytest

ROOT = Path(__file__).resolve().parent.parent
COLCON = Path(sys.executable).parent / 'colcon'

pytestmark = [pytest.mark.slow, pytest.mark.skipif(
    not COLCON.exists(), reason='colcon is not installed (requirements/dev.txt has it)')]


def source_files():
    listed = subprocess.run(['git', 'ls-files', '-co', '--exclude-standard'], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout.split()
    return [name for name in listed if (ROOT / name).is_file()]


def test_colcon_build_installs_executables_launch_config_and_marker(tmp_path):
    source = tmp_path / 'src' / 'reacher'
    for name in source_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, source / name)
    env = dict(os.environ, PATH=f'{COLCON.parent}:{os.environ["PATH"]}')
    listed = subprocess.run([str(COLCON), 'list'], cwd=tmp_path, env=env,
                            capture_output=True, text=True)
    # catkin_pkg must accept package.xml, or colcon silently builds plain Python.
    assert 'reacher' in listed.stdout and '(ros.ament_python)' in listed.stdout, listed
    build = subprocess.run([str(COLCON), 'build', '--packages-select', 'reacher'],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stdout + build.stderr

    install = tmp_path / 'install' / 'reacher'
    for executable in ('sim_node', 'perception_node', 'policy_node', 'perception_policy',
                       'reacher'):
        assert (install / 'lib' / 'reacher' / executable).exists(), executable
    share = install / 'share'
    assert (share / 'reacher' / 'launch' / 'bringup.launch.py').exists()
    for config in ('sim.yaml', 'perception.yaml', 'policy.yaml', 'reacher.rviz'):
        assert (share / 'reacher' / 'config' / config).exists(), config
    assert (share / 'reacher' / 'package.xml').exists()
    assert (share / 'ament_index' / 'resource_index' / 'packages' / 'reacher').exists()

    # The installed node runs from the install tree: a bad parameter stops it by name.
    script = (f'set +u; source {tmp_path}/install/setup.bash; set -u; '
              f'{install}/lib/reacher/sim_node --ros-args -p dt:=0.0')
    run = subprocess.run(['bash', '-c', script], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST'))
    assert run.returncode == 2 and 'parameter dt' in run.stdout + run.stderr, run
