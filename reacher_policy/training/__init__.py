"""Training of the learned controller with Stable-Baselines3 (issue 3).

The ``reacher policy`` subcommands train, eval, tune and export live here.

Training code may import the runtime (``reacher_policy.checkpoint``, ``reacher_sim``); no
runtime module imports this package, so a node never loads stable_baselines3 or gymnasium.

- ``config``: :class:`TrainConfig`, the presets and ``SEED_SIM`` (no heavy imports).
- ``commands``: each subcommand's arguments and runner, ``COMMANDS``
  (no heavy imports either).
- ``sb3``: the training env, the SB3 model factory and loader.
- ``callbacks``: periodic evaluation, TensorBoard scalars, checkpoints and progress.
- ``train``, ``evaluate``, ``tune``, ``export``, ``plots``: one job each.
- ``symmetry``: the task's D4 symmetry and the augmenting replay buffers.
"""
