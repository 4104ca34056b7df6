"""sensor_msgs/Image pixels as numpy, without rclpy (the bag tools read rosbags' messages)."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt


def rgb8_pixels(msg: Any) -> npt.NDArray[np.uint8]:
    """View the pixels of an rgb8 image message (rclpy's or rosbags') as an array.

    Rows may be padded to ``step`` bytes (sensor_msgs/Image); the padding is dropped.

    :param msg: an image with ``height``, ``width``, ``step`` and ``data`` (encoding rgb8).
    :return: (height, width, 3) uint8, a view of ``data`` where possible.
    :raises ValueError: when ``step`` or the data length do not fit the size.
    """
    if msg.step < 3 * msg.width or len(msg.data) != msg.step * msg.height:
        raise ValueError(f'image data is {len(msg.data)} bytes with step {msg.step}, '
                         f'expected step >= {3 * msg.width} and {msg.step * msg.height} bytes')
    rows = np.frombuffer(msg.data, dtype=np.uint8).reshape(msg.height, msg.step)
    return rows[:, :3 * msg.width].reshape(msg.height, msg.width, 3)
