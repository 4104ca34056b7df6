"""The windows people look at: render_mode='human' and the demo's camera view, under Xvfb."""

import importlib.util
import json
import shutil
import subprocess
import sys

import pytest

from ros_support import executable

XVFB_RUN = shutil.which('xvfb-run')
pytestmark = [
    pytest.mark.skipif(XVFB_RUN is None,
                       reason='xvfb-run is not installed (apt-get install xvfb; .ci/run does)'),
    pytest.mark.skipif(importlib.util.find_spec('pyglet') is None,
                       reason='pyglet is not installed (pip install "reacher[viz]"; it has no '
                              'rosdep key)'),
]

HUMAN_EPISODE = """
import numpy as np
from reacher_sim.env import ReacherEnv
env = ReacherEnv(render_mode='human')
env.reset(seed=0)
for _ in range(5):
    env.step(np.array([0.5, -0.5], dtype=np.float32))
print('window', env._viewer.window.width, env._viewer.window.height)
env.close()
"""


def test_human_render_mode_opens_a_window():
    result = subprocess.run([XVFB_RUN, '-a', sys.executable, '-c', HUMAN_EPISODE],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert 'window 512 512' in result.stdout


@pytest.mark.ros
@pytest.mark.slow
def test_demo_with_its_window(tmp_path):
    result = subprocess.run([XVFB_RUN, '-a', executable('reacher'), 'demo', '--duration', '8',
                             '--json', '--log-dir', str(tmp_path)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary['goals_reached'] >= 1
