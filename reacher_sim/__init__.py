"""reacher_sim: the 2-link arm, its camera, the gymnasium env and the sim node.

Importing this package loads nothing heavy: the gymnasium env registers itself as
``reacher/Reacher-v0`` when ``reacher_sim.env`` is imported (or made by
``gymnasium.make('reacher_sim.env:reacher/Reacher-v0')``).
"""
