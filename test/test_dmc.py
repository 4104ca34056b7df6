"""DeepMind Control's reacher_easy from pixels (issue 15's benchmark row): the env's frames,
action repeat and seeding, the SLAC agent's updates on its frames, the checkpoints'
refusal across env kinds, and a resumed run.

Skipped with the reason when dm-control is not installed or no MuJoCo GL backend renders
(each is tried in a child process first: a failing GL start can abort a process).
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry
from reacher_perception.slac.config import SlacModelConfig
from reacher_policy.training.slac.agent import SlacAgent
from reacher_policy.training.slac.config import SlacAgentConfig
from reacher_sim.config import SimConfig
from reacher_sim.wrappers import make_env

PROBE = ('from dm_control import suite; '
         'suite.load("reacher", "easy").physics.render(height=8, width=8, camera_id=0)')


def _gl_backend() -> str | None:
    """The first MuJoCo GL backend that renders here (the set one, else egl, osmesa)."""
    if importlib.util.find_spec('dm_control') is None:
        return None
    for backend in [os.environ['MUJOCO_GL']] if 'MUJOCO_GL' in os.environ else [
            'egl', 'osmesa']:
        probe = subprocess.run([sys.executable, '-c', PROBE], capture_output=True,
                               env={**os.environ, 'MUJOCO_GL': backend}, timeout=120)
        if probe.returncode == 0:
            return backend
    return None


BACKEND = _gl_backend()
pytestmark = pytest.mark.skipif(
    BACKEND is None,
    reason='dm-control is not installed (requirements/dev.txt)'
    if importlib.util.find_spec('dm_control') is None else
    'no MuJoCo GL backend renders (MUJOCO_GL=egl needs Mesa: apt-get install libegl1 '
    'libegl-mesa0 libgl1-mesa-dri libopengl0; .ci/run does)')
if BACKEND is not None:
    os.environ.setdefault('MUJOCO_GL', BACKEND)
    from reacher_policy.training.dmc import DMC_ENV_NAME, DmcPixelEnv
    from reacher_policy.training.slac.dmc_train import train_dmc

TINY_MODEL = SlacModelConfig(image_size=16, base_depth=2, feature_dim=8, z1_dim=4, z2_dim=8,
                             hidden_units=16, state_weight=0.0)
TINY = SlacAgentConfig(model=TINY_MODEL, sequence_length=3, hidden_units=16,
                       latent_batch_size=4, sac_batch_size=8, buffer_size=500,
                       initial_collection_steps=10, initial_latent_steps=2, gamma=0.99)


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


def test_frames_are_64x64_rgb8_and_the_action_is_held_for_4_control_steps() -> None:
    env = DmcPixelEnv()
    frame, info = env.reset(seed=0)
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
    assert env.observation_space.contains(frame) and info['env_steps'] == 0
    assert env.action_space.shape == (2,) and env.description() == {
        'name': DMC_ENV_NAME, 'image_size': 64, 'camera_id': 0, 'action_repeat': 4}
    start = env.physics.data.time
    frame, reward, terminated, truncated, info = env.step(np.ones(2, np.float32))
    assert info['env_steps'] == 4 and not (terminated or truncated)
    assert env.physics.data.time == pytest.approx(start + 4 * env.control_timestep())
    assert 0.0 <= reward <= 4.0 and frame.shape == (64, 64, 3)
    env.close()


def test_an_episode_is_1000_control_steps_truncated_not_terminated() -> None:
    env = DmcPixelEnv(image_size=16, action_repeat=50)  # 20 agent steps of 50
    env.reset(seed=1)
    ends = [env.step(np.zeros(2, np.float32))[2:4] for _ in range(20)]
    assert ends[:-1] == [(False, False)] * 19 and ends[-1] == (False, True)
    assert env.env_steps == 1000
    env.close()


def test_the_same_seed_gives_the_same_episode_and_another_seed_another() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 2)).astype(np.float32)

    def run(seed: int) -> tuple[np.ndarray, list[float]]:
        env = DmcPixelEnv(image_size=32)
        frames, rewards = [env.reset(seed=seed)[0]], []
        for action in actions:
            frame, reward, *_ = env.step(action)
            frames.append(frame)
            rewards.append(reward)
        env.close()
        return np.stack(frames), rewards

    first, again, other = run(3), run(3), run(4)
    np.testing.assert_array_equal(first[0], again[0])
    assert first[1] == again[1]
    assert not np.array_equal(first[0][0], other[0][0])


def test_the_agent_learns_on_dmc_frames_with_finite_losses() -> None:
    env = DmcPixelEnv(image_size=16)
    agent = SlacAgent(TINY, env, seed=0)
    agent.learn(14)  # 10 random steps, 2 pretraining updates, then 1 + 1 per step
    assert (agent.latent_updates, agent.sac_updates) == (2 + 5, 5)
    assert agent.buffer.frames.shape[1:] == (3, 16, 16)
    latent, sac = agent.update_latent(), agent.update_actor_critic()
    assert all(np.isfinite(value) for value in [*latent.values(), *sac.values()])
    env.close()


def test_checkpoints_are_refused_across_env_kinds_by_name(tmp_path: Path) -> None:
    dmc_env = DmcPixelEnv(image_size=16)
    dmc_path = SlacAgent(TINY, dmc_env).save(tmp_path / 'dmc.pt')
    reacher_env = make_env(SimConfig(geometry=ArmGeometry(image_size=16)), 'pixels')
    reacher_path = SlacAgent(TINY, reacher_env).save(tmp_path / 'reacher.pt')
    with pytest.raises(ValueError, match="trained on env 'dmc/reacher_easy', not 'reacher'"):
        SlacAgent.load(dmc_path, reacher_env)
    with pytest.raises(ValueError, match="trained on env 'dmc/reacher_easy', not 'reacher'"):
        SlacAgent.load(dmc_path, expected_env='reacher')
    with pytest.raises(ValueError, match="trained on env 'reacher', not 'dmc/reacher_easy'"):
        SlacAgent.load(reacher_path, dmc_env)
    with pytest.raises(ValueError, match='action_repeat: checkpoint 4, env 2'):
        SlacAgent.load(dmc_path, DmcPixelEnv(image_size=16, action_repeat=2))
    assert SlacAgent.load(dmc_path, dmc_env).env_description['name'] == DMC_ENV_NAME
    assert SlacAgent.load(reacher_path, reacher_env).env_description == {'name': 'reacher'}
    with pytest.raises(ValueError, match='privileged variant and symmetry_augmentation need'):
        SlacAgent(SlacAgentConfig(model=SlacModelConfig(image_size=16)), dmc_env)
    dmc_env.close()


def test_a_run_resumes_with_its_agent_replay_and_count(tmp_path: Path) -> None:
    # action repeat 50: an episode is 20 agent steps, so evaluations are short
    common = dict(config=TINY, out_dir=tmp_path, eval_every_env_steps=50 * 15, episodes=2,
                  action_repeat=50)
    first = train_dmc(total_env_steps=50 * 15, **common)  # type: ignore[arg-type]
    assert [row['agent_steps'] for row in first['evaluations']] == [15]
    saved = SlacAgent.load(tmp_path / 'agent.pt')
    assert saved.num_timesteps == 15 and saved.latent_updates == 2 + 6
    second = train_dmc(total_env_steps=50 * 20, **common)  # type: ignore[arg-type]
    assert second['resumed_at'] == [750]
    assert [row['agent_steps'] for row in second['evaluations']] == [15, 20]
    resumed = SlacAgent.load(tmp_path / 'agent.pt')
    # the restored replay holds >= 10 transitions: updates go on at once (1 + 1 a step)
    assert (resumed.latent_updates, resumed.sac_updates) == (8 + 5, 6 + 5)
    row = json.loads((tmp_path / 'progress.json').read_text())['evaluations'][-1]
    assert len(row['returns']) == 2 and 0.0 <= row['mean_return'] <= 1000.0
