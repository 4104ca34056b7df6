"""The demo window's core: frames paired with the estimates of the same frame, by stamp."""

import math

from geometry_msgs.msg import PoseWithCovarianceStamped
import numpy as np
from sensor_msgs.msg import JointState
from std_msgs.msg import Header

from reacher.window import confidence_value, FrameMatcher, message_class, render


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


def test_confidence_values_from_messages_that_carry_one():
    pose = PoseWithCovarianceStamped()
    pose.pose.covariance[0] = pose.pose.covariance[7] = 4e-6
    assert math.isclose(confidence_value(pose), 2e-3)
    joints = JointState(header=Header(), position=[0.75])
    assert confidence_value(joints) == 0.75
    assert confidence_value(Header()) is None
    kind = 'geometry_msgs/msg/PoseWithCovarianceStamped'
    assert message_class(kind) is PoseWithCovarianceStamped
    assert message_class('no_such_pkg/msg/Thing') is None
    assert message_class('../x') is None


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
