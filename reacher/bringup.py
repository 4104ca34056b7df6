"""What ``reacher demo`` and launch/bringup.launch.py share: nodes, files, namespaces, rviz.

Both start the same three nodes with the same parameter files in the same order, in the
same namespaces, so a loop behaves the same whichever started it.
"""

from __future__ import annotations

from pathlib import Path
import re

from reacher_common.paths import config_file

NODES = ('sim_node', 'perception_node', 'policy_node')
PARAMETER_FILES = {'sim_node': 'sim.yaml', 'perception_node': 'perception.yaml',
                   'policy_node': 'policy.yaml'}
"""Each node's own file, its section keyed ``/**/<node>`` (any namespace)."""
GEOMETRY_FILE = 'geometry.yaml'
"""The arm's geometry (under ``/**:``), given to every node after its own file: rcl applies
a node's parameter sections in the order they first appear, and ``-p`` overrides join the
``/**`` section, so a ``/**`` file given first would let the node's own file override them."""
ROBOT_PREFIX = 'arm'
NAME = re.compile(r'[A-Za-z_][A-Za-z0-9_]*')
"""One part of a ROS namespace."""
"""Several loops run in the namespaces <namespace>/arm1, <namespace>/arm2, ..."""


COMPOSED = {'perception_policy': ('perception_node', 'policy_node')}
"""A process that runs several nodes (reacher/composed.py) -> the nodes it runs."""


def parameter_files(node: str) -> list[Path]:
    """The shipped parameter files of ``node``, in the order to give them.

    A composed process (:data:`COMPOSED`) gets the files of each node it runs.

    :raises FileNotFoundError: naming a missing file.
    """
    own = [config_file(PARAMETER_FILES[name]) for name in COMPOSED.get(node, (node,))]
    return [*own, config_file(GEOMETRY_FILE)]


def robot_namespaces(namespace: str = '', robots: int = 1) -> list[str]:
    """The absolute namespace of each loop.

    One loop runs in ``namespace`` itself (the root namespace when it is empty); several
    run in ``<namespace>/arm1`` ... ``<namespace>/armN``.

    :param namespace: the base namespace, with or without a leading '/'.
    :param robots: how many loops, >= 1.
    :return: absolute namespaces ('/' for the root one).
    :raises ValueError: for robots < 1 or a namespace ROS would refuse.
    """
    if robots < 1:
        raise ValueError(f'robots must be >= 1, got {robots}')
    base = '/' + namespace.strip('/')
    if base != '/' and not all(NAME.fullmatch(part) for part in base[1:].split('/')):
        raise ValueError(f'namespace {namespace!r} is not a valid ROS namespace: use names '
                         'of letters, digits and underscores, not starting with a digit, '
                         "separated by '/'")
    if robots == 1:
        return [base]
    prefix = base.rstrip('/')
    return [f'{prefix}/{ROBOT_PREFIX}{index}' for index in range(1, robots + 1)]


def qualified(namespace: str, name: str) -> str:
    """``name`` under ``namespace``: 'sim_node' in '/', '/arm1/sim_node' in '/arm1'.

    The keys of the demo's process table and of its JSON ``nodes``.
    """
    return name if namespace == '/' else f'{namespace}/{name}'


def rviz_remappings() -> list[tuple[str, str]]:
    """Remappings that make rviz2 in a namespace show that namespace's loop.

    config/reacher.rviz names absolute topics (what rviz2 shows in its panels); each is
    remapped to its relative name, and /tf to tf, as the sim publishes its frames per arm.
    """
    import yaml

    config = yaml.safe_load(config_file('reacher.rviz').read_text())
    topics = sorted({display['Topic']['Value']
                     for display in config['Visualization Manager']['Displays']
                     if isinstance(display.get('Topic'), dict)
                     and str(display['Topic'].get('Value', '')).startswith('/')})
    return [(topic, topic.lstrip('/')) for topic in [*topics, '/tf', '/tf_static']]
