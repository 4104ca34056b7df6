"""Helpers for tests that run the node executables as real processes over DDS."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
import contextlib
import os
from pathlib import Path
import subprocess
import time
from typing import Any

from rcl_interfaces.srv import DescribeParameters, GetParameters, SetParameters
import rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter, parameter_value_to_python

ROOT = Path(__file__).resolve().parent.parent
CONFIG = ROOT / 'config'


def executable(name: str) -> str:
    """A console script of the package: beside this Python (the venv's bin/), in the colcon
    install of a sourced workspace (``colcon test``), or on PATH."""
    from reacher.demo import find_executable

    try:
        return find_executable(name)
    except FileNotFoundError as error:
        raise AssertionError(f'{error} (run scripts/bootstrap.sh, or colcon build and '
                             'source install/setup.bash)') from error


class NodeProcess:
    """A node executable running as a child process, its output captured to a file.

    :param name: the executable (and node) name.
    :param log_dir: where ``<name>.log`` goes (``<namespace>.<name>.log`` in a namespace).
    :param params_file: the node's own parameter file, a name in config/ or a path (a
        composed process: several).
    :param params: ``-p`` overrides, after the files.
    :param program: runs something else than the node's console script (a wrapper that
        registers a test backend first); its ROS arguments are the same.
    :param namespace: ``-r __ns:=`` (None: the root namespace).
    :param env: variables to set on top of this process's environment.
    :param prefix: a command that runs the node, e.g. ``['ip', 'netns', 'exec', 'a']``.
    """

    def __init__(self, name: str, log_dir: Path,
                 params_file: str | Path | Sequence[str | Path] | None = None,
                 params: dict[str, Any] | None = None, program: list[str] | None = None,
                 namespace: str | None = None, env: dict[str, str] | None = None,
                 prefix: Sequence[str] = ()) -> None:
        command = [*prefix, *(program or [executable(name)]), '--ros-args']
        if namespace:
            command += ['-r', f'__ns:={namespace}']
        for file in ([params_file] if isinstance(params_file, (str, Path)) else
                     params_file or []):
            command += ['--params-file', str(CONFIG / file)]
        # The shared geometry after the node's own file, as the launch file and `reacher
        # demo` give it (docs/architecture.md says why the order matters).
        command += ['--params-file', str(CONFIG / 'geometry.yaml')]
        for key, value in (params or {}).items():
            command += ['-p', f'{key}:={value}']
        stem = f'{namespace.strip("/").replace("/", ".")}.{name}' if namespace else name
        self.log_path = log_dir / f'{stem}.log'
        self._log = open(self.log_path, 'wb')
        # conftest.py set the DDS variables (loopback) in os.environ.
        full_env = dict(os.environ, PYTHONUNBUFFERED='1', **(env or {}))
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=full_env)

    def output(self) -> str:
        """Everything the process printed so far."""
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors='replace')

    def alive(self) -> bool:
        return self.process.poll() is None

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    def rss_mb(self) -> float:
        """The process's resident memory, MB (Linux /proc)."""
        status = Path(f'/proc/{self.process.pid}/status').read_text()
        return int(status.split('VmRSS:')[1].split()[0]) / 1024.0

    def stop(self) -> int | None:
        """SIGINT, then SIGKILL after 10 s; returns the exit code."""
        if self.alive():
            self.process.send_signal(2)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@contextlib.contextmanager
def running(*processes: NodeProcess) -> Iterator[tuple[NodeProcess, ...]]:
    """Stop the processes on exit, whatever happens."""
    try:
        yield processes
    finally:
        for process in processes:
            process.stop()


class Collector:
    """A test node that keeps every message received on chosen topics."""

    def __init__(self, name: str = 'test_collector') -> None:
        self.node = Node(name)
        self.messages: dict[str, list[Any]] = {}

    def listen(self, topic: str, msg_type: type, depth: int = 100) -> None:
        self.messages[topic] = []
        self.node.create_subscription(msg_type, topic, self.messages[topic].append, depth)

    def spin_until(self, condition: Callable[[], bool], timeout: float) -> bool:
        """Spin until ``condition()`` holds or ``timeout`` seconds pass; return whether it held."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return True
            rclpy.spin_once(self.node, timeout_sec=0.05)
        return condition()

    def spin_for(self, seconds: float) -> None:
        self.spin_until(lambda: False, seconds)

    def close(self) -> None:
        self.node.destroy_node()


def latest_diagnostics(collector: Collector, node_name: str) -> dict[str, str] | None:
    """The key/values of the newest /diagnostics status of ``node_name``, or None."""
    for array in reversed(collector.messages.get('/diagnostics', [])):
        for status in array.status:
            if status.name.startswith(node_name + ':'):
                return {kv.key: kv.value for kv in status.values}
    return None


class ParameterClient:
    """Set, get and describe the parameters of one running node through its services."""

    def __init__(self, collector: Collector, node_name: str) -> None:
        self.node = collector.node
        self.clients = {kind: self.node.create_client(service, f'/{node_name}/{kind}')
                        for kind, service in (('set_parameters', SetParameters),
                                              ('get_parameters', GetParameters),
                                              ('describe_parameters', DescribeParameters))}

    def wait(self, timeout: float = 20.0) -> bool:
        return all(client.wait_for_service(timeout_sec=timeout)
                   for client in self.clients.values())

    def _call(self, kind: str, request: Any) -> Any:
        # A service found by wait_for_service may not have matched this client's reply
        # reader yet, and then its first answer is lost: ask again (each call here is
        # idempotent).
        for _ in range(4):
            future = self.clients[kind].call_async(request)
            rclpy.spin_until_future_complete(self.node, future, timeout_sec=3)
            if future.result() is not None:
                return future.result()
            self.clients[kind].remove_pending_request(future)
        raise AssertionError(f'{kind} did not answer')

    def set(self, name: str, value: Any) -> Any:
        """Set one parameter (its ROS type is the Python type of ``value``); the result."""
        request = SetParameters.Request(
            parameters=[Parameter(name, value=value).to_parameter_msg()])
        return self._call('set_parameters', request).results[0]

    def get(self, name: str) -> Any:
        """The parameter's value as a Python value."""
        message = self._call('get_parameters', GetParameters.Request(names=[name])).values[0]
        return parameter_value_to_python(message)

    def describe(self, name: str) -> Any:
        """The parameter's rcl_interfaces/ParameterDescriptor."""
        request = DescribeParameters.Request(names=[name])
        return self._call('describe_parameters', request).descriptors[0]


def get_parameters(node: Node, target: str, names: Sequence[str],
                   timeout: float = 20.0) -> dict[str, Any]:
    """Ask the node ``target`` (a full name, '/arm1/sim_node') for parameter values, as
    ``ros2 param get`` does; unset ones come back as None."""
    from rcl_interfaces.srv import GetParameters
    from rclpy.parameter import parameter_value_to_python

    client = node.create_client(GetParameters, f'{target}/get_parameters')
    try:
        assert client.wait_for_service(timeout_sec=timeout), f'{target} offers no parameters'
        future = client.call_async(GetParameters.Request(names=list(names)))
        rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
        assert future.done(), f'{target} did not answer get_parameters'
        values = future.result().values  # type: ignore[union-attr]
        return {name: parameter_value_to_python(value)
                for name, value in zip(names, values, strict=True)}
    finally:
        node.destroy_client(client)


DAMAGES = ('empty', 'truncated', 'random bytes')
"""The ways :func:`damaged_copy` spoils a file."""


def damaged_copy(source: Path, target: Path, damage: str) -> Path:
    """Write ``source`` to ``target`` spoilt: empty, cut in half, or random bytes of its size."""
    data = source.read_bytes()
    target.write_bytes({'empty': b'', 'truncated': data[:len(data) // 2],
                        'random bytes': os.urandom(len(data))}[damage])
    return target
