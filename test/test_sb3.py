"""Loading Stable-Baselines3 files: weights only by default, pickle only when asked.

An SB3 model.zip keeps some of its data as cloudpickle and a replay buffer is a pickle;
unpickling a file runs whatever code its author put in it. Each test plants a payload
that would create a marker file when unpickled, and runs the real ``reacher`` command.
"""

import base64
import json
from pathlib import Path
import pickle
import subprocess
import sys
import zipfile

import pytest

from reacher_policy.training.config import TrainConfig
from reacher_policy.training.sb3 import build_model, make_train_env

REACHER = str(Path(sys.executable).parent / 'reacher')


class Payload:
    """Unpickling this creates ``marker``: stands for any code a crafted file runs."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def serialized(marker: Path) -> dict:
    """An SB3 'data' entry as SB3 writes a non-JSON object: base64 of a (cloud)pickle."""
    return {':type:': "<class 'abc.ABCMeta'>",
            ':serialized:': base64.b64encode(pickle.dumps(Payload(marker))).decode()}


@pytest.fixture(scope='module')
def model_zip(tmp_path_factory):
    """A real (untrained, tiny) SB3 SAC model.zip of the reacher env."""
    config = TrainConfig(net_arch=(16,), n_envs=1, progress=False, tensorboard=False,
                         learning_starts=10, buffer_size=1000)
    path = tmp_path_factory.mktemp('sb3') / 'model.zip'
    build_model(config, make_train_env(config)).save(path)
    return path


def crafted(model_zip: Path, out: Path, marker: Path, member: str = 'data') -> Path:
    """A copy of ``model_zip`` whose ``member`` carries the payload."""
    with zipfile.ZipFile(model_zip) as source, zipfile.ZipFile(out, 'w') as target:
        for item in source.infolist():
            content = source.read(item.filename)
            if item.filename == member == 'data':
                data = json.loads(content)
                data['observation_space'] = serialized(marker)
                content = json.dumps(data).encode()
            elif item.filename == member:
                content = pickle.dumps(Payload(marker))
            target.writestr(item, content)
    return out


def reacher(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([REACHER, *args], capture_output=True, text=True, timeout=300,
                          cwd=cwd)


def test_eval_loads_only_the_weights_of_an_sb3_zip(model_zip, tmp_path):
    marker = tmp_path / 'pwned'
    evil = crafted(model_zip, tmp_path / 'evil.zip', marker)
    result = reacher('policy', 'eval', '--checkpoint', str(evil), '--episodes', '2',
                     cwd=tmp_path)
    assert not marker.exists(), 'the zip was unpickled'
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout)['episodes'] == 2


@pytest.mark.parametrize('command', ['eval', 'export'])
def test_weights_that_need_unpickling_are_refused_with_the_opt_in_named(model_zip, tmp_path,
                                                                        command):
    marker = tmp_path / 'pwned'
    evil = crafted(model_zip, tmp_path / 'evil.zip', marker, member='policy.pth')
    args = (['--checkpoint', str(evil), '--episodes', '2'] if command == 'eval'
            else ['--model', str(evil), '--output', str(tmp_path / 'actor.pt')])
    result = reacher('policy', command, *args, cwd=tmp_path)
    assert not marker.exists()
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and '--allow-pickle' in lines[0] and str(evil) in lines[0], lines


def test_export_loads_only_the_weights_and_the_opt_in_unpickles(model_zip, tmp_path):
    marker = tmp_path / 'pwned'
    evil = crafted(model_zip, tmp_path / 'evil.zip', marker)
    result = reacher('policy', 'export', '--model', str(evil), '--output',
                     str(tmp_path / 'actor.pt'), cwd=tmp_path)
    assert not marker.exists(), 'the zip was unpickled'
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / 'actor.pt').stat().st_size > 0
    # The documented opt-in does unpickle (for files the user made and trusts).
    reacher('policy', 'export', '--model', str(evil), '--output', str(tmp_path / 'b.pt'),
            '--allow-pickle', cwd=tmp_path)
    assert marker.exists()


@pytest.mark.slow
def test_resume_loads_weights_only_and_refuses_a_pickled_replay_buffer(model_zip, tmp_path):
    marker = tmp_path / 'pwned'
    run = tmp_path / 'run'
    run.mkdir()
    evil = crafted(model_zip, run / 'model.zip', marker)
    common = ['policy', 'train', '--net-arch', '16', '--n-envs', '1', '--total-steps', '60',
              '--learning-starts', '10', '--buffer-size', '1000', '--eval-freq', '0',
              '--final-eval-episodes', '0', '--no-progress', '--no-tensorboard',
              '--resume', str(evil)]
    resumed = reacher(*common, '--out-dir', str(tmp_path / 'resumed'), cwd=tmp_path)
    assert not marker.exists(), 'the zip was unpickled'
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout)['env_steps'] == 60
    (run / 'replay_buffer.pkl').write_bytes(pickle.dumps(Payload(marker)))
    refused = reacher(*common, '--out-dir', str(tmp_path / 'again'), cwd=tmp_path)
    assert not marker.exists(), 'the replay buffer was unpickled'
    assert refused.returncode == 2
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and '--allow-pickle' in lines[-1], refused.stderr[-2000:]
