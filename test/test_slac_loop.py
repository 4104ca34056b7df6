"""SLAC in the loop (issue 15): the stamped latent, the ``slac`` controller, its refusals."""

from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PointStamped
import numpy as np
import pytest
from sensor_msgs.msg import Image, JointState
from std_msgs.msg import Float64MultiArray, Header
import torch

from reacher_common.estimate_msgs import LATENT_ENCODING, latent_image, read_latent
from reacher_common.geometry import ArmGeometry, Timing
from reacher_common.weights import latent_model_fingerprint, weights_fingerprint
from reacher_policy.checkpoint import ActorMetadata, ActorMlp, save_actor
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_policy.learned import LearnedController
from reacher_policy.loop import PerceivedState, PolicyLoop
from reacher_policy.slac import SlacController
from reacher_sim.render import ArmRenderer

from ros_support import latest_diagnostics, NodeProcess, running

HERE = Path(__file__).resolve().parent
SHIPPED_SLAC = HERE.parent / 'checkpoints' / 'slac_reacher.pt'
SHIPPED_CONTROLLER = HERE.parent / 'checkpoints' / 'sac_slac_latent_20hz.pt'
LATENT_DIM = 80  # the shipped model's z1 (16) + z2 (64)


def make_actor(path, fingerprint=None, observation='slac-latent', dt=0.05, seed=0):
    """A small random actor on the latent, recorded as trained on the shipped SLAC model."""
    torch.manual_seed(seed)
    actor = ActorMlp(LATENT_DIM, (16,))
    meta = ActorMetadata(
        algo='sac', geometry=ArmGeometry(), timing=Timing(dt=dt), observation_dim=LATENT_DIM,
        net_arch=(16,), observation=observation, latent_checkpoint='slac_reacher.pt',
        latent_fingerprint=(latent_model_fingerprint(SHIPPED_SLAC) if fingerprint is None
                            else fingerprint))
    save_actor(path, actor, meta)
    return actor


def altered_slac(source, target, part):
    """A copy of a SLAC checkpoint with one tensor of ``part`` ('model', 'confidence') moved."""
    payload = torch.load(source, weights_only=True)
    name = next(key for key, value in payload[part].items() if value.is_floating_point())
    payload[part][name] = payload[part][name] + 0.01
    torch.save(payload, target)
    return target


# --- the latent message, without ROS --------------------------------------------------


def test_the_latent_image_round_trips_with_its_stamp():
    header = Header(frame_id='world')
    header.stamp.sec, header.stamp.nanosec = 12, 345
    latent = np.linspace(-2.0, 3.0, LATENT_DIM).astype(np.float32)
    msg = latent_image(header, latent)
    assert (msg.height, msg.width, msg.step, msg.encoding) == (1, 80, 320, LATENT_ENCODING)
    assert msg.header.stamp.sec == 12 and msg.header.stamp.nanosec == 345
    np.testing.assert_array_equal(read_latent(msg), latent)


@pytest.mark.parametrize('spoil', ['rgb8', 'two rows', 'short data', 'nan', 'empty'])
def test_a_malformed_latent_is_refused_with_sizes_only(spoil):
    msg = latent_image(Header(), np.ones(8, np.float32))
    if spoil == 'rgb8':
        msg.encoding = 'rgb8'
    elif spoil == 'two rows':
        msg.height = 2
    elif spoil == 'short data':
        msg.data = msg.data[:-4]
    elif spoil == 'nan':
        msg = latent_image(Header(), np.array([1.0, np.nan], np.float32))
    else:
        msg = latent_image(Header(), np.zeros(0, np.float32))
    with pytest.raises(ValueError):
        read_latent(msg)


# --- the fingerprint and the controller core, without ROS -------------------------------


def test_the_fingerprint_counts_the_latent_model_and_not_the_confidence(tmp_path):
    shipped = latent_model_fingerprint(SHIPPED_SLAC)
    assert len(shipped) == 16
    refitted = altered_slac(SHIPPED_SLAC, tmp_path / 'confidence.pt', 'confidence')
    assert latent_model_fingerprint(refitted) == shipped
    retrained = altered_slac(SHIPPED_SLAC, tmp_path / 'model.pt', 'model')
    assert latent_model_fingerprint(retrained) != shipped
    assert weights_fingerprint({'a': torch.zeros(2)}) != weights_fingerprint(
        {'a': torch.zeros(3)})


@pytest.mark.parametrize('normalization, same', [('none', True), ('standardize', False)])
def test_the_fingerprint_counts_an_input_normalization(tmp_path, normalization, same):
    """The same weights behind another input normalisation compute something else."""
    payload = torch.load(SHIPPED_SLAC, weights_only=True)
    payload['metadata']['model_config']['input_normalization'] = normalization
    torch.save(payload, tmp_path / 'normalized.pt')
    fingerprint = latent_model_fingerprint(tmp_path / 'normalized.pt')
    assert (fingerprint == latent_model_fingerprint(SHIPPED_SLAC)) is same
    assert len(fingerprint) == 16


def test_the_loop_runs_the_slac_controller_on_the_latent(tmp_path):
    path = tmp_path / 'actor.pt'
    actor = make_actor(path)
    config = PolicyConfig(controller='slac', checkpoint=str(path),
                          latent_checkpoint=str(SHIPPED_SLAC), min_confidence=0.0)
    loop = PolicyLoop(config, PidConfig(rate_limit=0.0))
    assert loop.needs_latent and isinstance(loop.controller, SlacController)
    latent = np.random.default_rng(0).normal(size=LATENT_DIM).astype(np.float32)
    loop.update_estimate(PerceivedState(1.0, np.zeros(2), np.array([0.1, 0.1]),
                                        latent=latent))
    command = loop.step(1.0).command
    with torch.no_grad():
        expected = actor(torch.from_numpy(latent)[None])[0].numpy()
    np.testing.assert_allclose(command, expected, rtol=1e-5)  # velocity path, 1 rad/s
    # The latent is required, and must have the actor's width.
    for wrong in (None, np.zeros(LATENT_DIM - 1, np.float32),
                  np.full(LATENT_DIM, np.inf, np.float32)):
        with pytest.raises(ValueError, match='latent'):
            loop.update_estimate(PerceivedState(2.0, np.zeros(2), np.array([0.1, 0.1]),
                                                latent=wrong))


def test_a_controller_trained_on_another_latent_model_is_refused_naming_both_files(tmp_path):
    path = tmp_path / 'actor.pt'
    make_actor(path)
    retrained = altered_slac(SHIPPED_SLAC, tmp_path / 'other_slac.pt', 'model')
    with pytest.raises(ValueError) as error:
        SlacController(PolicyConfig(controller='slac', checkpoint=str(path),
                                    latent_checkpoint=str(retrained)), PidConfig())
    assert str(path) in str(error.value) and str(retrained) in str(error.value)
    assert '\n' not in str(error.value)
    # A refitted confidence is the same latent model: accepted.
    refitted = altered_slac(SHIPPED_SLAC, tmp_path / 'refit.pt', 'confidence')
    SlacController(PolicyConfig(controller='slac', checkpoint=str(path),
                                latent_checkpoint=str(refitted)), PidConfig())


def test_the_control_rate_and_the_observation_must_be_the_trained_ones(tmp_path):
    path = tmp_path / 'actor.pt'
    make_actor(path)
    with pytest.raises(ValueError, match='control_rate_hz'):
        SlacController(PolicyConfig(controller='slac', checkpoint=str(path),
                                    control_rate_hz=40.0), PidConfig())
    state_actor = tmp_path / 'state.pt'
    make_actor(state_actor, observation='state')
    with pytest.raises(ValueError, match="'state' observation"):
        SlacController(PolicyConfig(controller='slac', checkpoint=str(state_actor)),
                       PidConfig())
    with pytest.raises(ValueError, match="'slac-latent' observation"):
        LearnedController(PolicyConfig(controller='learned', checkpoint=str(path)),
                          PidConfig())


def test_the_shipped_controller_fits_the_shipped_perception():
    controller = SlacController(PolicyConfig(controller='slac'), PidConfig())
    assert controller.metadata.latent_fingerprint == latent_model_fingerprint(SHIPPED_SLAC)
    assert controller.latent_dim == LATENT_DIM and controller.metadata.dt == 0.05
    assert SHIPPED_CONTROLLER.stat().st_size < 500_000


# --- real processes ----------------------------------------------------------------------


@pytest.mark.ros
def test_perception_publishes_the_latent_with_its_frame_stamp(tmp_path, collector):
    collector.listen('/perception/latent', Image)
    collector.listen('/perception/joint_states', JointState)
    perception = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                             {'estimator': 'slac'})
    camera = collector.node.create_publisher(Image, '/camera/image_raw', 1)
    frame = ArmRenderer(ArmGeometry()).render(np.array([0.4, 1.1]), np.array([0.05, 0.12]))
    with running(perception):
        assert collector.spin_until(lambda: camera.get_subscription_count() > 0, 30), \
            perception.output()
        sent = []
        for index in range(40):  # best effort: send until a few frames are answered
            header = Header(frame_id='camera')
            header.stamp.sec, header.stamp.nanosec = 100 + index, 1000 * index
            camera.publish(Image(header=header, height=64, width=64, encoding='rgb8',
                                 step=192, data=frame.tobytes()))
            sent.append((header.stamp.sec, header.stamp.nanosec))
            if collector.spin_until(lambda: len(collector.messages['/perception/latent']) >= 3,
                                    0.2):
                break
        latents = collector.messages['/perception/latent']
        assert len(latents) >= 3, perception.output()

        def joint_stamps() -> set[tuple[int, int]]:
            return {(m.header.stamp.sec, m.header.stamp.nanosec)
                    for m in collector.messages['/perception/joint_states']}

        # Two topics: each frame's joint states may reach this subscriber after its latent.
        collector.spin_until(lambda: all(
            (m.header.stamp.sec, m.header.stamp.nanosec) in joint_stamps() for m in latents), 5)
    joints = joint_stamps()
    for msg in latents:
        stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        assert stamp in sent and stamp in joints  # the frame's own stamp
        values = read_latent(msg)
        assert values.shape == (LATENT_DIM,) and np.all(np.isfinite(values))


@pytest.mark.ros
def test_policy_node_refuses_a_controller_for_another_latent_model(tmp_path):
    retrained = altered_slac(SHIPPED_SLAC, tmp_path / 'other_slac.pt', 'model')
    process = NodeProcess('policy_node', tmp_path, 'policy.yaml',
                          {'controller': 'slac', 'latent_checkpoint': str(retrained)})
    with running(process):
        assert process.wait(60) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1, lines
    assert str(retrained) in lines[0] and 'sac_slac_latent_20hz.pt' in lines[0], lines


def goals(collector):
    values = latest_diagnostics(collector, 'sim_node') or {}
    return int(values.get('goals_reached', 0)), int(values.get('goals_timed_out', 0))


@pytest.mark.ros
@pytest.mark.slow
def test_the_all_slac_loop_reaches_a_goal(tmp_path, collector):
    collector.listen('/diagnostics', DiagnosticArray)
    collector.listen('/joint_commands', Float64MultiArray)
    collector.listen('/goal', PointStamped)
    nodes = [NodeProcess('sim_node', tmp_path, 'sim.yaml'),
             NodeProcess('perception_node', tmp_path, 'perception.yaml',
                         {'estimator': 'slac'}),
             NodeProcess('policy_node', tmp_path, 'policy.yaml',
                         {'controller': 'slac', 'min_confidence': 0.0})]
    with running(*nodes):
        reached = collector.spin_until(lambda: goals(collector)[0] >= 2, 90)
        logs = '\n'.join(node.output()[-1500:] for node in nodes)
        assert reached, f'goals (reached, timed out) = {goals(collector)}\n{logs}'
        policy = latest_diagnostics(collector, 'policy_node') or {}
    assert policy.get('controller') == 'slac', policy
    assert int(policy['frames.paired']) > 20 and int(policy['dropped_estimates']) == 0
    commands = np.array([m.data for m in collector.messages['/joint_commands']])
    assert np.abs(commands).max() > 0.1 and np.abs(commands).max() <= 1.0 + 1e-9


@pytest.mark.slow
def test_a_tiny_latent_training_run_exports_a_controller_the_node_accepts(tmp_path):
    from dataclasses import replace

    from reacher_policy.training.config import named_config
    from reacher_policy.training.train import train

    config = replace(named_config('sac-slac-latent'), total_steps=300, learning_starts=100,
                     batch_size=32, eval_freq=150, eval_episodes=2, final_eval_episodes=2,
                     train_episode_steps=50, tensorboard=False, progress=False,
                     out_dir=str(tmp_path / 'run'))
    result = train(config, 'test')
    assert result.env_steps == 300 and len(result.evaluations) == 2
    assert result.final is not None and 0.0 <= result.final['success_rate'] <= 1.0
    policy = tmp_path / 'run' / 'policy.pt'
    controller = SlacController(PolicyConfig(controller='slac', checkpoint=str(policy)),
                                PidConfig())
    meta = controller.metadata
    assert (meta.observation, meta.observation_dim, meta.dt) == ('slac-latent', 80, 0.05)
    assert meta.latent_fingerprint == latent_model_fingerprint(SHIPPED_SLAC)
    assert meta.latent_checkpoint == 'slac_reacher.pt'
    # 'reacher policy eval' evaluates it on the latent, refusing another latent model.
    from reacher_policy.training.evaluate import evaluate_checkpoint
    report = evaluate_checkpoint(str(policy), config.sim, episodes=2)
    assert report['episodes'] == 2 and 0.0 <= report['success_rate'] <= 1.0
    retrained = altered_slac(SHIPPED_SLAC, tmp_path / 'other_slac.pt', 'model')
    with pytest.raises(ValueError, match='another latent model'):
        evaluate_checkpoint(str(policy), config.sim, episodes=2,
                            latent_checkpoint=str(retrained))
    with pytest.raises(ValueError, match='symmetry'):
        train(replace(config, symmetry_augmentation=True), 'test')
