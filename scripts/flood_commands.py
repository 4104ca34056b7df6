"""Publish malformed joint commands at a fixed rate: the load of the flood tests.

    python scripts/flood_commands.py RATE_HZ SIZE SECONDS

Waits for a subscriber of /joint_commands, prints ``flooding``, then publishes commands
of ``SIZE`` NaNs (8 bytes each) at ``RATE_HZ`` for ``SECONDS`` and prints ``sent N``.
test/test_sim_node.py and benchmarks/reliability.py run it as a separate process, so the
flood competes with the policy over DDS as a misbehaving node would.
"""

import sys
import time

import rclpy
from std_msgs.msg import Float64MultiArray


def main() -> None:
    """Flood /joint_commands as the arguments say."""
    rate, size, duration = float(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    rclpy.init()
    node = rclpy.create_node('flood')
    publisher = node.create_publisher(Float64MultiArray, '/joint_commands', 10)
    while publisher.get_subscription_count() == 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    print('flooding', flush=True)
    message = Float64MultiArray(data=[float('nan')] * size)
    start, sent = time.monotonic(), 0
    while time.monotonic() - start < duration:
        delay = start + sent / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        publisher.publish(message)
        sent += 1
    print('sent', sent, flush=True)
    node.destroy_node()
    rclpy.try_shutdown()


if __name__ == '__main__':
    main()
