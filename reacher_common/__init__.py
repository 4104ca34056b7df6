"""reacher_common: the base layer (arm geometry, kinematics, config and ROS helpers).

It imports nothing of ours; every other package builds on it.
"""
