"""The camera's clock per executor: sim_node alone, its frame stamps and their delivery.

Starts ``sim_node`` (20 Hz camera) once per ``REACHER_EXECUTOR`` value ('single': rclpy's
SingleThreadedExecutor, 'events': its EventsExecutor, the nodes' default) and subscribes
/camera/image_raw from this process for ``--seconds``. Per executor: the stamps' period
jitter (|stamp difference - 50 ms|: when the sim's timer ran its step, what every later
stage of the loop inherits), the middleware's receive-time jitter, and stamp -> receive
(render + publish + the DDS hop), p50 and p99, with the load average.

    ROS_DOMAIN_ID=<yours> python benchmarks/executor_probe.py     # ~40 s
"""

from __future__ import annotations

from dataclasses import dataclass
import json
import os
from pathlib import Path
import subprocess
import sys
import time
from typing import Any

import numpy as np
import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image
import tyro


@dataclass
class Args:
    """Frame-stamp jitter and delivery of sim_node per executor."""

    seconds: float = 15.0
    """Seconds of frames per executor."""
    executors: tuple[str, ...] = ('single', 'events')
    """REACHER_EXECUTOR values to run sim_node with."""
    out: Path = Path('benchmarks/results/executor_probe.json')
    """Where to write the JSON results."""


def probe(executor: str, seconds: float) -> dict[str, Any]:
    """One sim_node run with ``executor``; the figures of its frames."""
    env = {**os.environ, 'REACHER_EXECUTOR': executor}
    env.setdefault('ROS_AUTOMATIC_DISCOVERY_RANGE', 'LOCALHOST')
    sim = subprocess.Popen([str(Path(sys.executable).parent / 'sim_node')], env=env,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    stamps: list[float] = []
    received: list[float] = []

    def frame(msg: Image, info: dict[str, int]) -> None:
        stamps.append(msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9)
        received.append(info['received_timestamp'] * 1e-9)

    node = rclpy.create_node('executor_probe')
    node.create_subscription(Image, 'camera/image_raw', frame, qos_profile_sensor_data)
    spinner = SingleThreadedExecutor()  # MessageInfo callbacks: not the EventsExecutor
    spinner.add_node(node)
    load = os.getloadavg()
    try:
        deadline = time.monotonic() + 30.0
        while len(stamps) < 5 and time.monotonic() < deadline:
            spinner.spin_once(timeout_sec=0.1)
        stamps.clear()
        received.clear()
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            spinner.spin_once(timeout_sec=0.1)
    finally:
        sim.terminate()
        sim.wait(timeout=30)
        spinner.remove_node(node)
        node.destroy_node()
    stamp, arrival = np.asarray(stamps), np.asarray(received)

    def jitter(times: np.ndarray) -> list[float]:
        return (np.percentile(np.abs(np.diff(times) - 0.05), [50, 99]) * 1e3).tolist()

    return {'frames': len(stamps), 'stamp_jitter_ms_p50_p99': jitter(stamp),
            'receive_jitter_ms_p50_p99': jitter(arrival),
            'stamp_to_receive_ms_p50_p99':
                np.percentile((arrival - stamp) * 1e3, [50, 99]).tolist(),
            'load_average_before': load, 'load_average_after': os.getloadavg()}


def main() -> None:
    args = tyro.cli(Args)
    rclpy.init()
    try:
        results = {executor: probe(executor, args.seconds) for executor in args.executors}
    finally:
        rclpy.try_shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({'args': {'seconds': args.seconds},
                                    'cpus': os.cpu_count(), 'results': results}, indent=1))
    print('| executor | frames | stamp jitter p50 / p99 ms | receive jitter p50 / p99 ms | '
          'stamp -> receive p50 / p99 ms | load 1 min |')
    print('|---|---|---|---|---|---|')
    for executor, r in results.items():
        cells = [r['stamp_jitter_ms_p50_p99'], r['receive_jitter_ms_p50_p99'],
                 r['stamp_to_receive_ms_p50_p99']]
        print(f'| {executor} | {r["frames"]} | '
              + ' | '.join(f'{a:.2f} / {b:.2f}' for a, b in cells)
              + f' | {r["load_average_before"][0]:.1f} |')


if __name__ == '__main__':
    main()
