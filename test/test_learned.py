"""Actor checkpoints and the learned controller (issue 3)."""

import numpy as np
import pytest
import torch

from reacher_common.geometry import ArmGeometry, Timing
from reacher_policy.checkpoint import ActorMetadata, ActorMlp, load_actor, save_actor
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.controllers import make_controller
from reacher_policy.learned import LearnedController
from reacher_policy.loop import PerceivedState, PolicyLoop
from reacher_policy.pid import PidSmoother
from reacher_sim.config import SimConfig
from reacher_sim.env import ReacherEnv, STATE_DIM, state_vector

PID = PidConfig()


def make_checkpoint(path, dt=0.1, links=(0.1, 0.1), seed=0):
    torch.manual_seed(seed)
    actor = ActorMlp(STATE_DIM, (16, 8))
    meta = ActorMetadata(algo='sac', geometry=ArmGeometry(
                             max_joint_velocity=1.0, upper_arm_length_m=links[0],
                             forearm_length_m=links[1], goal_size_m=0.04),
                         timing=Timing(dt=dt), observation_dim=STATE_DIM, net_arch=(16, 8),
                         env_steps=123, command='test')
    save_actor(path, actor, meta)
    return actor, meta


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / 'actor.pt'
    actor, meta = make_checkpoint(path)
    loaded, loaded_meta = load_actor(path)
    assert loaded_meta == meta
    observations = torch.randn(32, STATE_DIM)
    torch.testing.assert_close(loaded(observations), actor(observations))
    # Plain tensors and numbers: loadable without unpickling code.
    raw = torch.load(path, weights_only=True)
    assert set(raw) == {'state_dict', 'metadata'}


def test_export_from_sb3_matches_predict(tmp_path):
    from stable_baselines3 import SAC, TD3

    from reacher_policy.training.export import actor_from_sb3
    env = ReacherEnv()
    observations = np.stack([env.reset(seed=i)[0] for i in range(16)])
    for cls in (SAC, TD3):
        model = cls('MlpPolicy', env, policy_kwargs=dict(net_arch=[32, 16]), seed=0,
                    device='cpu')
        exported = actor_from_sb3(model)
        expected, _ = model.predict(observations, deterministic=True)
        with torch.no_grad():
            actual = exported(torch.as_tensor(observations)).numpy()
        np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize('kp', [2.5, 20.0, 0.0])
def test_the_smoother_commands_the_trained_action_whatever_kp(tmp_path, kp):
    path = tmp_path / 'actor.pt'
    actor, _ = make_checkpoint(path, dt=0.05)
    pid = PidConfig(kp=kp, rate_limit=0.0)
    controller = LearnedController(PolicyConfig(control_rate_hz=20.0, controller='learned',
                                                checkpoint=str(path)), pid)
    controller.reset()
    q, goal = np.array([0.3, -1.2]), np.array([0.05, 0.12])
    observation = state_vector(q, goal, ArmGeometry())
    with torch.no_grad():
        action = actor(torch.as_tensor(observation)[None])[0].numpy()
    velocity = controller.velocity(q, goal)
    np.testing.assert_allclose(velocity, action * 1.0, atol=1e-6)
    # Through the smoother's velocity path (no rate limit): exactly the trained velocity,
    # for any kp (kp = 0 once divided by zero and killed the node, issue 12).
    command = PidSmoother(pid).update_velocity(velocity, q, 0.05)
    np.testing.assert_allclose(command, action * 1.0, atol=1e-6)
    # The clamp and the rate limit still apply.
    limited = PidSmoother(PidConfig(output_limit=0.1, rate_limit=1.0))
    assert np.abs(limited.update_velocity(velocity, q, 0.05)).max() <= 0.05 + 1e-12


def test_policy_loop_runs_the_learned_controller_by_name(tmp_path):
    path = tmp_path / 'actor.pt'
    make_checkpoint(path, dt=0.05)
    config = PolicyConfig(control_rate_hz=20.0, controller='learned', checkpoint=str(path))
    loop = PolicyLoop(config, PID)
    assert isinstance(loop.controller, LearnedController)
    loop.update_estimate(PerceivedState(stamp_s=1.0, joint_positions=np.array([0.3, -1.2]),
                                        goal=np.array([0.05, 0.12])))
    output = loop.step(1.02)
    assert not output.stale and np.all(np.abs(output.command) <= 1.0)
    assert np.abs(output.command).max() > 0.0
    # A gain change reaches the smoother only: the checkpoint is not read again.
    controller = loop.controller
    path.unlink()
    loop.set_pid_config(PidConfig(kp=5.0))
    assert loop.controller is controller
    assert np.abs(loop.step(1.04).command).max() > 0.0


def test_mismatched_period_is_refused(tmp_path):
    path = tmp_path / 'actor.pt'
    make_checkpoint(path, dt=0.1)
    with pytest.raises(ValueError, match=r'trained with dt = 0.1 s .* control_rate_hz = 20'):
        LearnedController(PolicyConfig(control_rate_hz=20.0, checkpoint=str(path)), PID)


def test_mismatched_geometry_is_refused(tmp_path):
    path = tmp_path / 'actor.pt'
    make_checkpoint(path, dt=0.05, links=(0.12, 0.08))
    with pytest.raises(ValueError, match='trained for links of'):
        LearnedController(PolicyConfig(control_rate_hz=20.0, checkpoint=str(path)), PID)


def test_mismatched_geometry_names_the_field(tmp_path):
    path = tmp_path / 'actor.pt'
    make_checkpoint(path, dt=0.05, links=(0.1, 0.08))
    with pytest.raises(ValueError, match=r'forearm_length_m: checkpoint 0\.08, config 0\.1\b'):
        LearnedController(PolicyConfig(control_rate_hz=20.0, checkpoint=str(path)), PID)


def test_missing_checkpoint_is_named(tmp_path):
    missing = tmp_path / 'nope.pt'
    with pytest.raises(FileNotFoundError, match='nope.pt'):
        LearnedController(PolicyConfig(control_rate_hz=20.0, checkpoint=str(missing)), PID)


def test_default_checkpoint_is_the_shipped_one():
    controller = make_controller(PolicyConfig(controller='learned'), PID)
    assert isinstance(controller, LearnedController)
    assert controller.metadata.dt == 0.05


# The metadata of checkpoints/sac_reacher_20hz.pt, written before ActorMetadata held an
# ArmGeometry: flat, and only these geometry fields.
OLD_FLAT_METADATA = {
    'algo': 'sac', 'dt': 0.05, 'max_joint_velocity': 1.0, 'upper_arm_length_m': 0.1,
    'forearm_length_m': 0.1, 'goal_size_m': 0.04, 'observation_dim': 11, 'net_arch': [64, 64],
    'env_steps': 50000, 'command': 'reacher policy train --preset sac-20hz '
    '--symmetry-augmentation --seed 0 --no-progress --out-dir runs/sac-20hz-d4',
    'format': 'reacher-actor-v1'}


def test_shipped_checkpoint_with_old_flat_metadata_still_loads():
    from reacher_common.paths import share_dir
    path = share_dir() / 'checkpoints' / 'sac_reacher_20hz.pt'
    assert torch.load(path, weights_only=True)['metadata'] == OLD_FLAT_METADATA
    _, meta = load_actor(path)
    # The fields the file lacks take the defaults, which is what its simulator drew.
    assert meta.geometry == ArmGeometry() and meta.timing == Timing(dt=0.05)
    assert meta.dt == 0.05 and meta.net_arch == (64, 64) and meta.env_steps == 50000
    assert meta.command == OLD_FLAT_METADATA['command']


def test_new_metadata_is_flat_and_holds_the_whole_geometry(tmp_path):
    path = tmp_path / 'actor.pt'
    torch.manual_seed(0)
    geometry = ArmGeometry(arena_size_m=0.5, image_size=128, goal_size_m=0.05)
    meta = ActorMetadata(algo='td3', geometry=geometry, timing=Timing(dt=0.1),
                         observation_dim=STATE_DIM, net_arch=(4,))
    save_actor(path, ActorMlp(STATE_DIM, (4,)), meta)
    raw = torch.load(path, weights_only=True)['metadata']
    # A superset of the old flat keys, so one loader reads both.
    assert set(OLD_FLAT_METADATA) <= set(raw)
    assert raw['arena_size_m'] == 0.5 and raw['image_size'] == 128 and raw['dt'] == 0.1
    assert load_actor(path)[1] == meta


def test_not_an_actor_checkpoint_is_refused(tmp_path):
    path = tmp_path / 'other.pt'
    torch.save({'weights': torch.zeros(3)}, path)
    with pytest.raises(ValueError, match='not a reacher-actor-v1'):
        load_actor(path)


def test_export_cli_writes_a_loadable_actor(tmp_path):
    from stable_baselines3 import DDPG

    from reacher.cli import main as reacher_main
    env = ReacherEnv(SimConfig(timing=Timing(dt=0.05)))
    model = DDPG('MlpPolicy', env, policy_kwargs=dict(net_arch=[16]), seed=0, device='cpu')
    model.save(tmp_path / 'model.zip')
    output = tmp_path / 'actor.pt'
    assert reacher_main(['policy', 'export', '--model', str(tmp_path / 'model.zip'), '--output',
                        str(output), '--algo', 'ddpg', '--sim.timing.dt', '0.05']) == 0
    actor, meta = load_actor(output)
    assert meta.algo == 'ddpg' and meta.dt == 0.05 and meta.net_arch == (16,)
    observation, _ = env.reset(seed=0)
    expected, _ = model.predict(observation, deterministic=True)
    with torch.no_grad():
        actual = actor(torch.as_tensor(observation)[None])[0].numpy()
    np.testing.assert_allclose(actual, expected, atol=1e-5)
