"""The loop across two hosts: sim_node in one Linux network namespace, perception_node and
policy_node in another, joined by a veth pair that this test creates and removes.

Each namespace has its own network stack (only its loopback and its end of the veth), so
DDS discovery and data can only cross the link: the multi-host set-up of reacher/dds.py
(config/fastdds_multihost.xml: UDPv4, no shared memory; discovery range SUBNET and
ROS_STATIC_PEERS naming the other side), as two machines on one network would use it. The
addresses are a private /30 that exists only inside the two namespaces; nothing is routed
anywhere else, and both namespaces (with the veth pair) are deleted afterwards, also on
failure. Needs root and iproute2's ``ip``; skips with the reason elsewhere.
"""

from __future__ import annotations

import os
from pathlib import Path
import re
import shutil
import subprocess
import time

import pytest

from reacher.dds import dds_environment, PROFILE_VARIABLES, RANGE_VARIABLE

from ros_support import NodeProcess, running

pytestmark = [pytest.mark.ros, pytest.mark.slow]

IP = shutil.which('ip')
SIM_ADDRESS, CONTROL_ADDRESS = '10.211.92.1', '10.211.92.2'
"""One private /30: the sim's host and the perception + policy host."""


def ip(*args: str) -> subprocess.CompletedProcess[str]:
    assert IP is not None
    return subprocess.run([IP, *args], capture_output=True, text=True, timeout=30)


def why_not() -> str | None:
    """Why this machine cannot run the test, or None."""
    if os.geteuid() != 0:
        return 'creating network namespaces needs root'
    if IP is None:
        return "iproute2's ip is not installed (apt-get install iproute2; .ci/run does)"
    probe = f'reacher_probe{os.getpid()}'
    created = ip('netns', 'add', probe)
    if created.returncode != 0:
        return f'ip netns add is not allowed here: {created.stderr.strip()}'
    ip('netns', 'del', probe)
    return None


@pytest.fixture
def two_hosts():
    """Two network namespaces joined by a veth pair: (sim's, perception + policy's)."""
    reason = why_not()
    if reason:
        pytest.skip(reason)
    tag = os.getpid() % 100000
    hosts = (f'reacher{tag}sim', f'reacher{tag}ctl')
    links = (f'rch{tag}s', f'rch{tag}c')  # interface names: 15 characters at most
    try:
        for host in hosts:
            check(ip('netns', 'add', host))
        check(ip('link', 'add', links[0], 'netns', hosts[0], 'type', 'veth',
                 'peer', 'name', links[1], 'netns', hosts[1]))
        for host, link, address in zip(hosts, links, (SIM_ADDRESS, CONTROL_ADDRESS),
                                       strict=True):
            check(ip('-n', host, 'addr', 'add', f'{address}/30', 'dev', link))
            check(ip('-n', host, 'link', 'set', 'lo', 'up'))
            check(ip('-n', host, 'link', 'set', link, 'up'))
        # Wait for carrier: Fast DDS derives its host id, and the addresses it announces,
        # from the interfaces that are running when a participant starts; started before
        # the link is, a participant announces loopback only and is never reached.
        deadline = time.monotonic() + 10
        while not all('state UP' in ip('-n', host, 'link', 'show', link).stdout
                      for host, link in zip(hosts, links, strict=True)):
            assert time.monotonic() < deadline, 'the veth pair never came up'
            time.sleep(0.05)
        yield hosts, links
    finally:
        for host in hosts:
            ip('netns', 'del', host)  # takes its end of the veth pair with it
        leftover = ip('netns', 'list').stdout
        assert not any(host in leftover for host in hosts), leftover


def check(result: subprocess.CompletedProcess[str]) -> None:
    assert result.returncode == 0, f'{result.args}: {result.stderr}'


def transmitted_bytes(host: str, link: str) -> int:
    """Bytes sent by ``link`` inside network namespace ``host``."""
    return int(ip('netns', 'exec', host, 'cat', f'/sys/class/net/{link}/statistics/tx_bytes')
               .stdout)


def shared_memory_mapped(pid: int) -> bool:
    """Whether process ``pid`` maps a Fast DDS shared-memory segment."""
    return '/dev/shm/fastrtps_' in Path(f'/proc/{pid}/maps').read_text()


def test_the_loop_closes_across_two_hosts(tmp_path, two_hosts):
    (sim_host, control_host), (sim_link, control_link) = two_hosts
    # The multi-host DDS set-up, from an environment without ours (conftest set loopback).
    base = {key: value for key, value in os.environ.items()
            if key not in (RANGE_VARIABLE, *PROFILE_VARIABLES)}
    multi_host = dds_environment(base, multi_host=True)
    assert multi_host[RANGE_VARIABLE] == 'SUBNET'
    blank = dict.fromkeys(PROFILE_VARIABLES, '')

    def env(peer: str) -> dict[str, str]:
        return {**blank, **multi_host, 'ROS_STATIC_PEERS': peer}

    nodes = [
        NodeProcess('sim_node', tmp_path, 'sim.yaml', env=env(CONTROL_ADDRESS),
                    prefix=[IP, 'netns', 'exec', sim_host]),
        NodeProcess('perception_node', tmp_path, 'perception.yaml', env=env(SIM_ADDRESS),
                    prefix=[IP, 'netns', 'exec', control_host]),
        NodeProcess('policy_node', tmp_path, 'policy.yaml', env=env(SIM_ADDRESS),
                    prefix=[IP, 'netns', 'exec', control_host]),
    ]
    sim = nodes[0]

    def reached() -> int:
        counts = re.findall(r'goal reached: (\d+) reached', sim.output())
        return int(counts[-1]) if counts else 0

    with running(*nodes):
        deadline = time.monotonic() + 90
        while reached() < 3 and time.monotonic() < deadline and all(n.alive() for n in nodes):
            time.sleep(0.5)
        logs = '\n'.join(node.output()[-1500:] for node in nodes)
        assert reached() >= 3, logs
        # `ip netns exec` execs the node: these are the nodes' own processes.
        assert not any(shared_memory_mapped(node.process.pid) for node in nodes), logs
        sent_by_sim = transmitted_bytes(sim_host, sim_link)
        sent_by_control = transmitted_bytes(control_host, control_link)
    assert 'timed_out' not in sim.output(), logs
    # The camera frames (12 KiB each at 20 Hz) crossed the link; the commands came back.
    assert sent_by_sim > 1_000_000, sent_by_sim
    assert sent_by_control > 10_000, sent_by_control
