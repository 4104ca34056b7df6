"""Training of the learned perception: everything the perception node never loads.

Modules: :mod:`.config` (the typed configs of collection, augmentation and training),
:mod:`.dataset` (the on-disk sequence format: ``write_shard``, ``SequenceDataset``),
:mod:`.collect` (the simulator driven by random and IK policies), :mod:`.augment`
(training-time corruption of frames), :mod:`.train` (SLAC updates, schedules, plots),
:mod:`.evaluate` (a checkpoint on held-out sequences) and :mod:`.commands` (the
``reacher perception collect|train|eval`` subcommands).

Training may import the runtime (``reacher_perception``, ``reacher_policy``'s loop,
``reacher_sim``); no runtime module imports this package.
"""
