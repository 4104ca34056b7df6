"""``reacher policy ...``: train, evaluate, tune and export learned policies (issue 3).

The top-level ``reacher`` command dispatches ``reacher policy ARGS`` to
:func:`policy_main`; ``python -m reacher_policy.cli ARGS`` does the same.
"""

from __future__ import annotations

import sys

USAGE = """usage: reacher policy {train,eval,tune,export} [--help] ...

  train   train DDPG, TD3 or SAC on the reacher env (the seed's main.py TRAIN)
  eval    evaluate a checkpoint on fixed seeds (the seed's main.py TEST)
  tune    run a small Optuna study and write the best configuration
  export  write the small actor checkpoint (.pt) of an SB3 model.zip"""


def policy_main(argv: list[str]) -> int:
    """Dispatch a ``reacher policy`` subcommand.

    :param argv: the arguments after ``policy``.
    :return: the exit status.
    """
    if not argv or argv[0] in ('-h', '--help'):
        print(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == 'train':
        from reacher_policy.train import train_main
        return train_main(rest)
    if command == 'eval':
        from reacher_policy.evaluate import eval_main
        return eval_main(rest)
    if command == 'tune':
        from reacher_policy.tune import tune_main
        return tune_main(rest)
    if command == 'export':
        from reacher_policy.train import export_main
        return export_main(rest)
    print(f'reacher policy: unknown command {command!r}\n{USAGE}', file=sys.stderr)
    return 2


if __name__ == '__main__':
    sys.exit(policy_main(sys.argv[1:]))
