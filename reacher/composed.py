"""``perception_policy``: perception_node and policy_node composed in one process.

ROS 2 composition puts several nodes in one process, and rclcpp then hands a message from
a publisher to a subscription of the same process directly (intra-process delivery),
without DDS. rclpy has no such delivery, so this container does it for the one exchange
on the camera-to-command path: perception builds each part of a frame's estimate bundle
(joints, goal, status, latent), hands the message objects to the policy's part callbacks
(``PerceptionNode.intra_process``), whose DDS subscriptions for those parts are removed
(``PolicyNode.take_parts_in_process``), and then publishes them on their topics as
always, for rviz, bags and other nodes (rclcpp too delivers intra-process first). The two
nodes keep their names, parameters (``config/perception.yaml`` and ``config/policy.yaml``
by node name; a ``-p`` on the command line reaches both), services and /diagnostics; they
share one executor, so the policy's command follows in the perception's own callback.
``reacher demo`` and the launch file run this process by default (``--no-composed``,
``composed:=false``: a process per node).

Measured on the idle 2-core machine (``python benchmarks/latency.py --done-when
--composed``; benchmarks/README.md, "Composition"), with each command published as soon
as it was computed: camera-to-command p50 / p99 2.64-2.95 / 3.59-4.13 ms and
command-period jitter p99 0.81-1.22 ms, where the three processes gave 3.35-3.68 /
4.1-5.2 ms and 1.0-2.7 ms; the estimate's stage (end of inference to the policy holding
the bundle) 0.35-0.41 ms instead of 0.89-0.96 ms, and 0.19-0.23 ms with the hand-over
before the DDS publication.

    perception_policy --ros-args --params-file config/perception.yaml
        --params-file config/policy.yaml --params-file config/geometry.yaml   (one line)
"""

from __future__ import annotations

from rclpy.node import Node

from reacher_common.ros_utils import run_node
from reacher_perception.node import PerceptionNode
from reacher_policy.node import PolicyNode


def build() -> list[Node]:
    """The two nodes, the bundle's parts wired in-process (after ``rclpy.init``).

    :raises ValueError: a bad parameter or checkpoint of either node (``run_node`` turns
        it into one line and exit code 2).
    """
    perception = PerceptionNode()
    try:
        policy = PolicyNode()
    except BaseException:
        perception.destroy_node()
        raise
    perception.intra_process.update(policy.take_parts_in_process())
    return [perception, policy]


def main(args: list[str] | None = None) -> int:
    """Console entry point ``perception_policy``."""
    return run_node(build, args)


if __name__ == '__main__':
    raise SystemExit(main())
