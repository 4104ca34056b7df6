"""The node shells' shared start-up: parameter files, declared ranges, one-line errors."""

import pytest

from ros_support import NodeProcess, running

NODES = [('sim_node', 'sim.yaml'), ('perception_node', 'perception.yaml'),
         ('policy_node', 'policy.yaml')]


@pytest.mark.ros
@pytest.mark.parametrize('node, own_file', NODES)
@pytest.mark.parametrize('problem', ['missing', 'unparsable', 'not a mapping'])
def test_a_bad_parameter_file_stops_the_start_in_one_line(tmp_path, node, own_file, problem):
    params = tmp_path / 'params.yaml'
    if problem == 'unparsable':
        params.write_text(f'{node}:\n  ros__parameters:\n    seed: [0, \n')
    elif problem == 'not a mapping':
        params.write_text('- just\n- a list\n')
    process = NodeProcess(node, tmp_path, str(params))
    with running(process):
        assert process.wait(30) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and str(params) in lines[0], lines
    assert 'Traceback' not in lines[0]


def test_a_range_is_written_once_and_read_by_checks_and_descriptors():
    from dataclasses import dataclass, fields

    from rcl_interfaces.msg import ParameterType

    from reacher_common.config_tools import bounded, check_fields, FieldError, Range
    from reacher_common.ros_params import parameter_descriptor

    @dataclass(frozen=True)
    class Gains:
        gain: float = bounded(2.0, 0.0, 10.0, low_open=True)
        """A gain, 1/s, in (0, 10]."""
        steps: int = bounded(5, 1, 100)
        """Steps, in [1, 100]."""

        def __post_init__(self) -> None:
            check_fields(self)

    assert str(Range(0.0, 10.0, low_open=True)) == '(0, 10]'
    for bad in ({'gain': 0.0}, {'gain': 10.5}, {'steps': 0}, {'gain': float('nan')}):
        with pytest.raises(FieldError) as caught:
            Gains(**bad)
        assert caught.value.field == next(iter(bad))
    gain, steps = fields(Gains)
    double = parameter_descriptor(Gains, gain, 'ctl.gain', 2.0, read_only=False)
    assert double.type == ParameterType.PARAMETER_DOUBLE and not double.read_only
    assert (double.floating_point_range[0].from_value,
            double.floating_point_range[0].to_value) == (0.0, 10.0)
    assert double.description == 'A gain, 1/s, in (0, 10].'
    assert 'in (0, 10]' in double.additional_constraints
    integer = parameter_descriptor(Gains, steps, 'steps', 5, read_only=True)
    assert integer.read_only and integer.integer_range[0].to_value == 100
    assert integer.type == ParameterType.PARAMETER_INTEGER


class FakeNode:
    """Just the logger CallbackErrors uses."""

    def __init__(self):
        self.lines = []

    def get_logger(self):
        return self

    def error(self, line):
        self.lines.append(line)


def test_a_guarded_callback_counts_logs_throttled_and_falls_back():
    from reacher_common.ros_utils import CallbackErrors

    node = FakeNode()
    errors = CallbackErrors(node, lambda: 60.0)

    def fail(value):
        raise RuntimeError(f'bad {value}\nsecond line')

    guarded = errors.guard(fail, 'step', fallback=lambda value: f'stopped after {value}')
    assert [guarded(i) for i in range(3)] == [f'stopped after {i}' for i in range(3)]
    assert errors.counts == {'step': 3} and errors.total() == 3
    assert len(node.lines) == 1 and 'step failed' in node.lines[0]
    assert 'second line' not in node.lines[0]
    assert errors.last_error['step'] == 'RuntimeError: bad 2'
    # A fallback that fails too is counted, and still does not raise.
    broken = errors.guard(fail, 'other', fallback=fail)
    assert broken(1) is None
    assert errors.counts['other'] == 1 and errors.counts['other fallback'] == 1
    assert errors.guard(lambda: 5, 'fine')() == 5


@pytest.mark.parametrize('text, problem', [
    (None, 'does not exist'), ('a: [1, \n', 'not valid YAML (line'),
    ('- a list\n', 'must map node names'), ('sim_node:\n  ros__parameters: {}\n', None),
])
def test_parameter_file_problems_are_one_sentence(tmp_path, text, problem):
    from reacher_common.ros_params import parameter_file_problem

    path = tmp_path / 'params.yaml'
    if text is not None:
        path.write_text(text)
    found = parameter_file_problem(['node', '--ros-args', '--params-file', str(path)])
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and str(path) in found
    assert parameter_file_problem(['node']) is None


@pytest.mark.ros
@pytest.mark.parametrize('node, own_file, typo', [
    ('sim_node', 'sim.yaml', ('seed: 0', 'sead: 0')),
    ('policy_node', 'policy.yaml', ('kp: 2.5', 'kpp: 2.5')),
])
def test_a_misspelt_key_in_the_nodes_own_section_stops_the_start(tmp_path, node, own_file,
                                                                 typo):
    from ros_support import CONFIG

    params = tmp_path / own_file
    params.write_text((CONFIG / own_file).read_text().replace(*typo))
    process = NodeProcess(node, tmp_path, str(params))
    with running(process):
        assert process.wait(30) == 2, process.output()
    # One line says what is wrong (the node may have logged its start before the check).
    lines = [line for line in process.output().strip().splitlines()
             if not line.startswith('[INFO]')]
    misspelt = typo[1].split(':')[0]
    assert len(lines) == 1 and misspelt in lines[0] and str(params) in lines[0], lines


@pytest.mark.ros
def test_an_unknown_executor_stops_the_start_in_one_line(tmp_path):
    process = NodeProcess('perception_node', tmp_path, 'perception.yaml',
                          env={'REACHER_EXECUTOR': 'multi'})
    with running(process):
        assert process.wait(30) == 2, process.output()
    lines = process.output().strip().splitlines()
    assert len(lines) == 1 and "REACHER_EXECUTOR='multi'" in lines[0], lines


def test_an_unknown_executor_is_named():
    from reacher_common.ros_utils import make_executor
    with pytest.raises(ValueError, match="REACHER_EXECUTOR='multi'.*events"):
        make_executor('multi')
