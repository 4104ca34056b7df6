"""The learned controller through the policy node's loop (controller -> PID smoother).

Runs ``reacher_policy.loop.PolicyLoop`` with ``controller='learned'`` on the simulated arm
at the checkpoint's rate, on true state or on state ``latency_ticks`` control periods old
(a stand-in for perception latency), for several PID settings. The controller places
its setpoint so that the PID's P term commands the trained velocity at any kp, so the
settings differ only in the smoother's rate limit.

    PYTHONPATH=. python benchmarks/rl_learned_loop.py --checkpoint checkpoints/sac_reacher_20hz.pt
"""

from dataclasses import asdict, dataclass
import json
from pathlib import Path
import sys

import numpy as np
import torch
import tyro


@dataclass(frozen=True)
class Args:
    """Success and smoothness of the learned controller inside the policy loop."""

    checkpoint: str = 'checkpoints/sac_reacher_20hz.pt'
    """Actor checkpoint (.pt)."""
    episodes: int = 200
    """Episodes per row (goal and start drawn from seed 10000 + episode)."""
    latencies: tuple[int, ...] = (0, 1)
    """Estimate ages to test, in control periods."""
    output: str = 'benchmarks/results/rl_learned_loop.json'
    """JSON results file."""


def main(argv):
    args = tyro.cli(Args, args=argv, description=Args.__doc__)
    torch.set_num_threads(1)
    from reacher_policy.checkpoint import load_actor
    from reacher_policy.config import PidConfig, PolicyConfig
    from reacher_policy.loop import PerceivedState, PolicyLoop
    from reacher_sim.arm import ArmSim
    from reacher_sim.config import SimConfig

    _, meta = load_actor(args.checkpoint)
    sim = SimConfig(geometry=meta.geometry, timing=meta.timing)
    rate = 1.0 / meta.dt
    settings = (('default PID (kp 2.5, rate limit 10)', PidConfig()),
                ('kp = 1/dt, rate limit 10', PidConfig(kp=rate)),
                ('kp = 1/dt, no rate limit', PidConfig(kp=rate, rate_limit=0.0)))
    rows = []
    for name, pid in settings:
        for latency in args.latencies:
            loop = PolicyLoop(PolicyConfig(control_rate_hz=rate, controller='learned',
                                           checkpoint=args.checkpoint), pid)
            successes, steps, changes = [], [], []
            for episode in range(args.episodes):
                arm = ArmSim(sim)
                arm.reset(np.random.default_rng(10_000 + episode))
                loop.reset()
                history, previous, success = [], np.zeros(2), False
                for tick in range(sim.max_episode_steps):
                    now = tick * sim.timing.dt
                    history.append(PerceivedState(now, arm.joint_positions.copy(),
                                                  arm.goal.copy()))
                    loop.update_estimate(history[max(0, len(history) - 1 - latency)])
                    command = loop.step(now + 1e-6).command
                    changes.append(float(np.mean(np.abs(command - previous))))
                    previous = command
                    if arm.step(command).success:
                        success = True
                        steps.append(tick + 1)
                        break
                successes.append(success)
            rows.append({'pid': name, 'latency_ticks': latency, 'episodes': args.episodes,
                         'success_rate': float(np.mean(successes)),
                         'mean_time_to_goal_s': float(np.mean(steps)) * sim.timing.dt if steps
                         else None,
                         'mean_abs_command_change_rad_s': float(np.mean(changes))})
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps({'args': asdict(args), 'rows': rows},
                                            indent=2, default=list) + '\n')
    print('| PID | estimate age (periods) | success | time to goal s | '
          'mean abs command change rad/s |\n|---|---|---|---|---|')
    for row in rows:
        ttg = '-' if row['mean_time_to_goal_s'] is None else f"{row['mean_time_to_goal_s']:.2f}"
        print(f"| {row['pid']} | {row['latency_ticks']} | {row['success_rate']:.3f} | {ttg} | "
              f"{row['mean_abs_command_change_rad_s']:.3f} |")
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
