"""``reacher bag``: record, replay and evaluate rosbag2 bags without a ROS install.

Built on the `rosbags <https://gitlab.com/ternaris/rosbags>`_ library, which reads and
writes rosbag2 (sqlite3 and MCAP storage) in pure Python; rclpy is imported only by
``record`` and ``play``, which talk to live nodes. ``ros2 bag info`` / ``ros2 bag play`` on a
ROS 2 install read the bags this writes, and the other way round.

Subcommands (``reacher bag <command> --help`` lists every option)::

    reacher bag record OUTPUT [--topics T ...] [--duration S] [--storage mcap|sqlite3]
    reacher bag play BAG [--rate 1.0] [--clock] [--topics T ...] [--loop]
    reacher bag info BAG
    reacher bag eval BAG [--estimator classical] [--checkpoint PATH] [--out DIR]
    reacher bag to-dataset BAG OUT.npz [--sequence-length 9]

Topic names are relative, as the nodes' are; ``--namespace /arm1`` (record, play, eval,
to-dataset) resolves them under a loop's namespace.

Exit codes: 0 done, 1 failure while running, 2 bad input (a missing bag, an output that
exists, a topic that is not in the bag), with one line naming it.

Modules, one job each: :mod:`.io` (topic names, opening and reading bags, ``BagError``),
:mod:`.ros` (the rclpy side shared by record and play), :mod:`.record`, :mod:`.play`,
:mod:`.info`, :mod:`.evaluate` (``eval``), :mod:`.dataset` (``to-dataset`` and its file
format) and :mod:`.cli` (``bag_main``). This package imports none of them, so importing one
loads only what it needs.
"""
