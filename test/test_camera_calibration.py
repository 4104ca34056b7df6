"""Camera calibration from CameraInfo, and rectification with it (no ROS graph needed)."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import CameraInfo

from reacher_common.camera_calibration import (
    CameraCalibration,
    nudged,
    Rectifier,
    StampedRectifier,
)
from reacher_common.geometry import ArmGeometry
from reacher_sim.camera import CameraModel
from reacher_sim.render import ArmRenderer
from reacher_sim.scene import Scene

IDEAL = CameraModel.from_geometry(ArmGeometry()).calibration()
INNER = (slice(3, -3), slice(3, -3))  # a nudge leaves a sliver the raw frame did not see


def nudged_scene(shift_px, roll_deg, scale):
    return Scene(families=('camera',), shift_px=shift_px, roll_deg=roll_deg, scale=scale)


@pytest.mark.parametrize('shift_px, roll_deg, scale', [
    ((3.0, -2.0), 0.0, 1.0), ((0.0, 0.0), 8.0, 1.0), ((0.0, 0.0), 0.0, 1.08),
    ((-2.5, 1.5), -6.0, 0.93)])
def test_rectifying_with_the_published_calibration_undoes_the_camera_nudge(
        shift_px, roll_deg, scale):
    joints, goal = np.array([0.7, -1.2]), np.array([0.06, 0.09])
    clean = ArmRenderer(ArmGeometry()).render(joints, goal).astype(int)
    renderer = ArmRenderer(ArmGeometry())
    renderer.set_scene(nudged_scene(shift_px, roll_deg, scale))
    raw = renderer.render(joints, goal)
    assert not renderer.calibration.rectified
    np.testing.assert_array_equal(renderer.calibration.p, IDEAL.p)
    rectified = Rectifier(renderer.calibration)(raw).astype(int)
    before = np.abs(raw.astype(int) - clean)[INNER]
    after = np.abs(rectified - clean)[INNER]
    # What is left is the bilinear resampling's blur, not a displaced arm.
    assert after.mean() < 0.4 * before.mean(), (before.mean(), after.mean())
    assert (after.max(axis=-1) > 60).mean() < 0.01


def test_an_ideal_camera_passes_frames_through_untouched():
    frame = ArmRenderer(ArmGeometry()).render(np.array([0.1, 0.2]), np.array([0.0, 0.1]))
    rectifier = Rectifier(IDEAL)
    assert IDEAL.rectified and rectifier.identity
    assert rectifier(frame) is frame


def test_a_distorted_camera_is_undistorted_as_opencv_does():
    # The general path (distortion: remap tables), against cv2.undistort on the same frame.
    frame = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    frame = cv2.GaussianBlur(frame, (0, 0), 2.0)
    d = np.array([-0.2, 0.05, 0.001, -0.002, 0.0])
    calibration = CameraCalibration(width=64, height=64, k=IDEAL.k, d=d, r=np.eye(3),
                                    p=IDEAL.p)
    rectified = Rectifier(calibration)(frame)
    expected = cv2.undistort(frame, IDEAL.k, d)
    # undistort fills the border with black where remap here replicates it.
    assert np.abs(rectified.astype(int) - expected.astype(int))[INNER].max() <= 1


def test_camera_info_round_trip_and_malformed_messages_are_refused_by_name():
    calibration = nudged(IDEAL, shift_px=(1.0, -0.5), roll_deg=2.0, scale=1.01)
    msg = CameraInfo(**calibration.message_fields())
    assert CameraCalibration.from_message(msg).same_as(calibration)
    # An unset R (all zeros) is the identity, as for a monocular camera.
    unset = CameraInfo(**IDEAL.message_fields())
    unset.r = [0.0] * 9
    assert CameraCalibration.from_message(unset).rectified

    def refused(**change):
        bad = CameraInfo(**calibration.message_fields())
        for name, value in change.items():
            setattr(bad, name, value)
        with pytest.raises(ValueError) as error:
            CameraCalibration.from_message(bad)
        return str(error.value)

    assert 'K is singular' in refused(k=[0.0] * 9)  # CameraInfo's "uncalibrated"
    assert 'R is not a rotation' in refused(r=[2.0, 0, 0, 0, 1, 0, 0, 0, 1])
    assert 'D has 20' in refused(d=[0.0] * 20)
    assert 'D must hold' in refused(d=[0.0] * 3)
    assert 'finite' in refused(p=[float('nan')] + [0.0] * 11)
    assert 'out of range' in refused(width=0)
    with pytest.raises(ValueError, match='scale'):
        nudged(IDEAL, scale=0.0)
    with pytest.raises(ValueError, match='ideal'):
        nudged(calibration)


def test_frames_are_paired_with_the_calibration_of_their_stamp():
    frame = ArmRenderer(ArmGeometry()).render(np.array([0.3, 0.9]), np.array([0.05, 0.05]))
    first = nudged(IDEAL, shift_px=(2.0, 0.0))
    second = nudged(IDEAL, shift_px=(-2.0, 0.0))
    stamped = StampedRectifier(keep=2)
    assert stamped(5, frame) is frame and stamped.frames_without_calibration == 1
    stamped.add(10, first)
    stamped.add(20, second)
    np.testing.assert_array_equal(stamped(10, frame), Rectifier(first)(frame))
    np.testing.assert_array_equal(stamped(20, frame), Rectifier(second)(frame))
    assert stamped.unpaired_frames == 0 and stamped.rectified_frames == 2
    # A frame whose own calibration has not come is read with the newest one ...
    np.testing.assert_array_equal(stamped(30, frame), Rectifier(second)(frame))
    assert stamped.unpaired_frames == 1
    # ... and only the last ``keep`` are kept.
    stamped.add(40, IDEAL)
    np.testing.assert_array_equal(stamped(10, frame), frame)
    assert stamped.unpaired_frames == 2
    with pytest.raises(ValueError, match='32x32'):
        Rectifier(first)(frame[:32, :32])
