"""Run a node with a backend that fails on purpose, to test how the node shell copes.

``python faulty_backends.py policy_node --ros-args -p controller:=faulty ...`` registers
the ``faulty`` controller (and ``faulty`` estimator) and runs the node's ``main``. The
controller raises for goals left of the shoulder (x < 0) and acts as ``ik`` otherwise;
the estimator raises for frames whose top-left pixel is white and is ``classical``
otherwise, so a test switches the fault on and off through its input.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from reacher_perception.classical import ClassicalEstimator
from reacher_perception.estimator import ESTIMATORS
from reacher_policy.controllers import CONTROLLERS, IkController


class FaultyController(IkController):
    def setpoint(self, joint_positions: Any, goal: Any) -> Any:
        if goal[0] < 0.0:
            raise RuntimeError('faulty controller: goal left of the shoulder')
        return super().setpoint(joint_positions, goal)


class FaultyEstimator(ClassicalEstimator):
    def estimate(self, image: Any, previous_command: Any = None) -> Any:
        if np.all(image[0, 0] == 255):
            raise RuntimeError('faulty estimator: white corner')
        return super().estimate(image, previous_command)


CONTROLLERS['faulty'] = FaultyController
ESTIMATORS['faulty'] = FaultyEstimator

if __name__ == '__main__':
    node = sys.argv.pop(1)
    if node == 'policy_node':
        from reacher_policy.node import main
    elif node == 'perception_node':
        from reacher_perception.node import main
    else:
        from reacher_sim.node import main
    raise SystemExit(main())
