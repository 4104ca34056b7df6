"""``reacher policy {train,eval,tune,export}``: each subcommand's arguments and runner.

:data:`COMMANDS` maps a subcommand to its arguments dataclass (frozen; each field's
docstring is its ``--help``) and its runner, which takes the parsed arguments and returns
the exit status. This module is light: importing it loads neither torch, gymnasium nor
stable_baselines3 (the runners import the training stack when they run), so a CLI can
list and parse every subcommand cheaply. ``train``'s arguments are
:class:`reacher_policy.training.config.TrainConfig` itself; ``--preset NAME`` (or
``PRESET+d4``) picks its defaults from :data:`PRESETS` via :func:`named_config`.

The ``reacher`` command (reacher/cli.py) parses the line; ``--preset`` is taken out there
and the preset passed to tyro as the defaults.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
import json
from pathlib import Path
import shlex
import sys
from typing import Any

from reacher_policy.training.config import Algo, named_config, PRESETS, SEED_SIM, TrainConfig
from reacher_sim.config import SimConfig
from reacher_sim.options import RobustnessConfig


@dataclass(frozen=True)
class PolicyEvalArgs:
    """Evaluate a trained policy on fixed seeds (the seed's ``main.py TEST``)."""

    checkpoint: str
    """An actor checkpoint (.pt, from training's ``policy.pt``), an SB3 model (.zip, of
    which only the actor's weights are read) or a SLAC agent (``agent.pt`` of ``--algo
    slac``, evaluated on pixels)."""
    episodes: int = 500
    """Evaluation episodes."""
    seed: int = 10_000
    """Seed of the first episode (episode i uses seed + i)."""
    sim: SimConfig = field(default_factory=lambda: SEED_SIM)
    """The task; for a .pt checkpoint, the geometry and dt it was trained for are used."""
    robustness: RobustnessConfig = field(default_factory=RobustnessConfig)
    """Observation/action noise and delay during evaluation."""
    output: str = ''
    """Write the result as JSON here ('' prints only)."""
    torch_threads: int = 1
    """torch.set_num_threads (the machine is small and shared)."""
    allow_pickle: bool = False
    """Load an SB3 .zip the SB3 way, unpickling its data: runs code from the file, so only
    for files you made and trust (by default only its weights are read)."""
    latent_checkpoint: str = ''
    """For an actor on the SLAC latent (``--preset sac-slac-latent``): the SLAC perception
    checkpoint that filters the frames ('' = the shipped checkpoints/slac_reacher.pt)."""


@dataclass(frozen=True)
class TuneArgs:
    """Run a small Optuna study of learning rate, gamma, net size, batch and reward weights."""

    trials: int = 10
    """Number of trials."""
    total_steps: int = 8000
    """Env steps per trial."""
    eval_freq: int = 2000
    """Env steps between a trial's evaluations."""
    eval_episodes: int = 30
    """Episodes per evaluation."""
    seed: int = 0
    """Seed of the sampler and of every trial's run."""
    preset: str = ''
    """A preset or ``PRESET+d4`` (``reacher_policy.training.config.named_config``) to start
    from; '' uses ``base``."""
    base: TrainConfig = field(default_factory=TrainConfig)
    """The configuration the sampled knobs override, when ``preset`` is ''."""
    output: str = 'runs/tune/best.json'
    """Where to write the best configuration and the trial table."""


@dataclass(frozen=True)
class ExportArgs:
    """Write the small actor checkpoint (.pt) of an SB3 model.zip."""

    model: str
    """The SB3 model.zip (SAC, TD3 or DDPG with an MLP policy)."""
    output: str
    """The .pt file to write."""
    algo: Algo = 'sac'
    """Recorded in the metadata."""
    sim: SimConfig = field(default_factory=lambda: SEED_SIM)
    """The task the model was trained on (dt, velocity limit, geometry); the default is
    ``TrainConfig``'s."""
    allow_pickle: bool = False
    """Load the zip the SB3 way, unpickling its data: runs code from the file, so only for
    files you made and trust (by default only its weights are read)."""


def _command_line() -> str:
    """This process's command, as recorded in a checkpoint: ``reacher`` and its arguments."""
    return 'reacher ' + shlex.join(sys.argv[1:])


def run_train(config: TrainConfig, command: str = '') -> int:
    """``reacher policy train``: train one run and print its summary as JSON.

    :param config: the run.
    :param command: recorded in the checkpoint ('' : this process's command line).
    :return: 0.
    """
    from reacher_policy.training.train import train

    result = train(config, command or _command_line())
    summary = {'out_dir': config.out_dir, 'env_steps': result.env_steps,
               'steps_to_90': result.steps_to_90,
               'wall_time_to_90_s': result.wall_time_to_90_s,
               'train_time_s': result.train_time_s,
               'final_success_rate': None if result.final is None
               else result.final['success_rate']}
    print(json.dumps(summary, indent=2))
    return 0


def run_eval(args: PolicyEvalArgs) -> int:
    """``reacher policy eval``: print (and optionally save) an evaluation.

    :param args: the parsed arguments.
    :return: 0.
    """
    from reacher_policy.training.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(args.checkpoint, args.sim, args.episodes, args.seed,
                                 args.robustness, args.torch_threads, args.allow_pickle,
                                 args.latent_checkpoint)
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(text + '\n')
    return 0


def run_tune(args: TuneArgs) -> int:
    """``reacher policy tune``: run the study, write the best configuration, print it.

    :param args: the parsed arguments.
    :return: 0.
    :raises SystemExit: naming an unknown ``preset``.
    """
    base = named_config(args.preset) if args.preset else args.base
    from reacher_policy.training.tune import tune

    report = tune(base, Path(args.output), args.trials, args.total_steps, args.eval_freq,
                  args.eval_episodes, args.seed)
    print(json.dumps({'best_value': report['best_value'],
                      'best_params': report['best_params']}, indent=2))
    return 0


def run_export(args: ExportArgs, command: str = '') -> int:
    """``reacher policy export``: SB3 model.zip -> actor checkpoint.

    :param args: the parsed arguments.
    :param command: recorded in the checkpoint ('' : this process's command line).
    :return: 0.
    """
    from reacher_policy.training.export import export_model_file

    export_model_file(args.model, args.output, args.algo, args.sim,
                      command or _command_line(), args.allow_pickle)
    print(f'wrote {args.output}')
    return 0


COMMANDS: dict[str, tuple[type, Callable[[Any], int]]] = {
    'train': (TrainConfig, run_train),
    'eval': (PolicyEvalArgs, run_eval),
    'tune': (TuneArgs, run_tune),
    'export': (ExportArgs, run_export),
}
"""Subcommand -> (arguments dataclass, runner taking the parsed arguments)."""

DESCRIPTIONS: dict[str, str] = {
    'train': (TrainConfig.__doc__ or '') + (
        f'\n\nPresets: --preset {{{",".join(PRESETS)}}} sets the defaults (NAME+d4 adds '
        'symmetry augmentation); the flags given override them.'),
}
"""Help texts that say more than the arguments class's docstring (the ``reacher`` CLI)."""
