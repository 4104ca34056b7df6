"""The demo window's core: frames paired with the estimates of the same frame, by stamp."""

import math

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseWithCovarianceStamped
import numpy as np
from std_msgs.msg import Header

from reacher.window import confidence_value, FrameMatcher, render


def frame(value):
    return np.full((64, 64, 3), value, np.uint8)


def test_a_frame_gets_the_estimate_of_its_own_stamp_not_the_newest():
    matcher = FrameMatcher()
    matcher.add_frame((1, 0), frame(1))
    matcher.add_frame((1, 50), frame(2))  # the next frame comes before the first's estimate
    matcher.add((1, 0), 'joints', np.array([0.1, 0.2]))
    assert matcher.take() is None  # no goal yet: incomplete
    matcher.add((1, 0), 'goal', np.array([0.05, 0.0]))
    pair = matcher.take()
    assert pair.stamp == (1, 0) and pair.frame[0, 0, 0] == 1
    assert pair.joints.tolist() == [0.1, 0.2]
    assert matcher.take() is None  # nothing newer is complete
    # An estimate that arrives before its frame is kept for it.
    matcher.add((1, 100), 'joints', np.array([0.5, 0.6]))
    matcher.add((1, 100), 'goal', np.array([0.0, 0.05]))
    matcher.add((1, 100), 'confidence', ('joint_confidence', 0.9))
    matcher.add_frame((1, 100), frame(3))
    pair = matcher.take()
    assert pair.stamp == (1, 100) and pair.joints.tolist() == [0.5, 0.6]
    assert pair.confidence == {'joint_confidence': 0.9}
    # The frame (1, 50) never got its estimate and is older than the last drawn: skipped.
    assert matcher.take() is None


def test_without_estimates_the_newest_frame_is_shown_alone_when_asked():
    matcher = FrameMatcher(keep=3)
    for index in range(5):
        matcher.add_frame((2, index), frame(index))
    assert len(matcher.pairs) == 3
    assert matcher.take() is None
    pair = matcher.take(unmatched_after=1)
    assert pair.stamp == (2, 4) and pair.joints is None
    assert matcher.take(unmatched_after=1) is None


def test_confidence_values_from_the_estimate_bundle():
    pose = PoseWithCovarianceStamped()
    pose.pose.covariance[0] = pose.pose.covariance[7] = 4e-6
    assert math.isclose(confidence_value(pose), 2e-3)
    pose.pose.covariance[0] = -1.0  # the "unknown" covariance
    assert confidence_value(pose) is None
    status = DiagnosticArray(status=[DiagnosticStatus(
        name='perception_node: estimate',
        values=[KeyValue(key='confidence', value='0.93'), KeyValue(key='x', value='1')])])
    assert confidence_value(status) == 0.93
    status.status[0].values[0].value = 'nan'
    assert confidence_value(status) is None
    assert confidence_value(DiagnosticArray()) is None
    assert confidence_value(Header()) is None


def test_the_hud_shows_the_confidence_only_where_there_is_one():
    import argparse

    from reacher.window import _hud_lines, Pair

    args = argparse.Namespace(estimator='classical', controller='ik')
    info = {'sim_node': {'goals_reached': '3', 'success_rate': 'nan'},
            'policy_node': {'rate_hz': '20.01', 'configured_rate_hz': '20.0'}}
    pair = Pair((0, 1), frame(0), np.zeros(2), np.zeros(2))
    lines = _hud_lines(info, args, pair)
    assert 'classical / ik' in lines[0] and 'goals reached 3' in lines[1]
    assert 'success -' in lines[1] and 'control 20.01 of 20.0 Hz' in lines[2]
    assert len(lines) == 3
    pair.confidence = {'confidence': 0.93, 'goal std m': 0.0012}
    assert _hud_lines(info, args, pair)[3] == 'confidence 0.93, goal std 1.2 mm'


def test_render_draws_the_estimate_and_the_hud():
    matcher = FrameMatcher()
    matcher.add_frame((0, 1), frame(0))
    matcher.add((0, 1), 'joints', np.array([0.0, 0.0]))
    matcher.add((0, 1), 'goal', np.array([0.1, 0.1]))
    image = render(matcher.take(), ['classical / ik', 'goals reached 3'])
    assert image.shape == (512 + 84, 512, 3) and image.dtype == np.uint8
    # The arm's estimate, straight along +x from the centre, is drawn in white.
    assert image[256, 256 + 60].min() > 100
    assert image[512:].max() > 100  # the HUD's text
