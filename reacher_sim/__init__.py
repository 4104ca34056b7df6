"""reacher_sim: the 2-link arm, its camera, the gymnasium env and the sim node."""

from gymnasium.envs.registration import register

register(id='reacher/Reacher-v0', entry_point='reacher_sim.env:ReacherEnv')
