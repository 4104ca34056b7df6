"""The house plan (docs/architecture.md), kept by tests: one geometry, configs equal to the
shipped YAML, runtime apart from training, small modules, unique public names."""

from __future__ import annotations

import ast
from dataclasses import fields, is_dataclass, MISSING
import json
from pathlib import Path
import subprocess
import sys
from typing import Any

import pytest
import yaml

from reacher_common.config_tools import node_parameters
from reacher_common.geometry import ArmGeometry, Timing
from reacher_perception.config import PerceptionConfig
from reacher_policy.config import PidConfig, PolicyConfig
from reacher_sim.config import SimConfig, SimNodeConfig
from reacher_sim.scene import SceneConfig

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ('reacher', 'reacher_common', 'reacher_sim', 'reacher_perception', 'reacher_policy')


def scalar_defaults(cls: type, prefix: str = '') -> dict[str, Any]:
    """Field -> default of a config dataclass, leaving out nested config fields."""
    values = {}
    for field in fields(cls):  # type: ignore[arg-type]
        if field.default is not MISSING:
            values[prefix + field.name] = field.default
        elif not is_dataclass(field.default_factory()):  # type: ignore[misc]
            values[prefix + field.name] = field.default_factory()  # type: ignore[misc]
    return values


def shipped(file: str, node: str) -> dict[str, Any]:
    return node_parameters([yaml.safe_load((ROOT / 'config' / file).read_text())], node)


@pytest.mark.parametrize('file, node, expected', [
    ('geometry.yaml', 'any_node', scalar_defaults(ArmGeometry)),
    ('sim.yaml', 'sim_node', {**scalar_defaults(Timing), **scalar_defaults(SimConfig),
                              **scalar_defaults(SceneConfig, 'scene.'),
                              **scalar_defaults(SimNodeConfig)}),
    ('perception.yaml', 'perception_node', scalar_defaults(PerceptionConfig)),
    ('policy.yaml', 'policy_node', {**scalar_defaults(PolicyConfig),
                                    **scalar_defaults(PidConfig, 'pid.')}),
])
def test_each_yaml_lists_every_field_with_its_default(file, node, expected):
    values = shipped(file, node)
    assert sorted(values) == sorted(expected), file
    for name, default in expected.items():
        assert values[name] == default, f'{file}: {name} is {values[name]!r}, code {default!r}'


def test_the_geometry_is_the_only_file_under_the_wildcard():
    for file in ('sim.yaml', 'perception.yaml', 'policy.yaml'):
        assert '/**' not in yaml.safe_load((ROOT / 'config' / file).read_text()), file


def package_modules() -> list[Path]:
    return sorted(path for package in PACKAGES for path in (ROOT / package).rglob('*.py'))


def class_fields(tree: ast.Module) -> dict[str, set[str]]:
    declared: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            declared[node.name] = {item.target.id for item in node.body
                                   if isinstance(item, ast.AnnAssign)
                                   and isinstance(item.target, ast.Name)}
    return declared


def test_the_arm_geometry_is_defined_once():
    owners = [f'{path.relative_to(ROOT)}:{name}'
              for path in package_modules()
              for name, names in class_fields(ast.parse(path.read_text())).items()
              if 'upper_arm_length_m' in names]
    assert owners == ['reacher_common/geometry.py:ArmGeometry']


def test_no_module_is_over_500_lines():
    long = {str(path.relative_to(ROOT)): n for path in package_modules()
            if (n := len(path.read_text().splitlines())) > 500}
    assert not long


def test_no_two_public_classes_share_a_name():
    seen: dict[str, list[str]] = {}
    for path in package_modules():
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ClassDef) and not node.name.startswith('_'):
                seen.setdefault(node.name, []).append(str(path.relative_to(ROOT)))
    assert {name: where for name, where in seen.items() if len(where) > 1} == {}


def test_nothing_cites_a_file_outside_the_repository():
    names = ('DESIGN' + '.md', '..' + '/shared')
    tracked = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True)
    if tracked.returncode != 0:
        pytest.skip('not a git checkout')
    hits = []
    for name in tracked.stdout.split():
        path = ROOT / name
        if path.suffix in ('.pt', '.png', '.npz') or not path.is_file():
            continue
        text = path.read_text(errors='replace')
        hits += [f'{name}: {cite}' for cite in names if cite in text]
    assert not hits


RUNTIME_MODULES = ('reacher_sim.node', 'reacher_perception.node',
                   'reacher_perception.slac.estimator', 'reacher_perception.classical',
                   'reacher_policy.node', 'reacher_policy.learned', 'reacher_policy.loop')


def test_the_runtime_loads_no_training_code():
    script = ('import importlib, json, sys\n'
              f'for name in {RUNTIME_MODULES!r}: importlib.import_module(name)\n'
              'print(json.dumps(sorted(sys.modules)))')
    result = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            cwd=ROOT, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = json.loads(result.stdout.splitlines()[-1])
    assert set(RUNTIME_MODULES) <= set(loaded)
    assert not [name for name in loaded
                if name.split('.')[0] in ('gymnasium', 'stable_baselines3')
                or '.training' in name], loaded
