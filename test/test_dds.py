"""reacher/dds.py and the shipped Fast DDS profiles: loopback by default, network on request.

The socket test reads the kernel's UDP table (/proc/<pid>/net/udp) for the sockets a node
process holds, the way ``ss -uanp`` does.
"""

import os
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray
import pytest

from reacher.dds import dds_environment, LOOPBACK_PROFILE, MULTI_HOST_PROFILE
from reacher_common.paths import config_file

from ros_support import NodeProcess, running


def test_loopback_is_the_default():
    env = dds_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'})
    assert Path(env['FASTRTPS_DEFAULT_PROFILES_FILE']).name == LOOPBACK_PROFILE
    # rmw_fastrtps would add a UDP transport on every interface for LOCALHOST.
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SYSTEM_DEFAULT'
    assert dds_environment({}) == env


def test_a_profile_of_the_callers_own_is_kept():
    assert dds_environment({'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/mine.xml'}) == {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    assert dds_environment({'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/mine.xml',
                            'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}) == {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
    # Another RMW ignores Fast DDS profiles: only the range.
    assert dds_environment({'RMW_IMPLEMENTATION': 'rmw_cyclonedds_cpp'}) == {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}


def test_multi_host_opts_out_of_loopback():
    env = dds_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
                           'ROS_STATIC_PEERS': '192.168.1.7'}, multi_host=True)
    assert Path(env['FASTRTPS_DEFAULT_PROFILES_FILE']).name == MULTI_HOST_PROFILE
    assert env['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
    assert 'ROS_STATIC_PEERS' not in env  # passed through as the caller set it
    assert dds_environment({'ROS_AUTOMATIC_DISCOVERY_RANGE': 'OFF'}, multi_host=True)[
        'ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'OFF'


def test_a_profile_of_ours_from_a_parent_counts_as_none():
    parent = dds_environment({})
    assert dds_environment(parent) == parent
    child = dds_environment(parent, multi_host=True)
    assert Path(child['FASTRTPS_DEFAULT_PROFILES_FILE']).name == MULTI_HOST_PROFILE
    assert child['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'


def test_the_profiles_are_installed_and_well_formed():
    import xml.etree.ElementTree as ElementTree

    namespace = '{http://www.eprosima.com/XMLSchemas/fastRTPS_Profiles}'
    loopback = ElementTree.parse(config_file(LOOPBACK_PROFILE)).getroot()
    addresses = {element.text for element in loopback.iter(f'{namespace}address')}
    assert addresses == {'127.0.0.1'}
    types = {element.text for element in loopback.iter(f'{namespace}type')}
    assert types == {'UDPv4', 'SHM'}
    multi_host = ElementTree.parse(config_file(MULTI_HOST_PROFILE)).getroot()
    assert {element.text for element in multi_host.iter(f'{namespace}type')} == {'UDPv4'}
    for root in (loopback, multi_host):
        assert [e.text for e in root.iter(f'{namespace}useBuiltinTransports')] == ['false']


def udp_sockets(pid: int) -> list[str]:
    """The local addresses ('127.0.0.1:7410') of the UDP sockets that process ``pid`` holds."""
    inodes = set()
    for fd in Path(f'/proc/{pid}/fd').iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith('socket:['):
            inodes.add(target[len('socket:['):-1])
    addresses = []
    for table, width in (('udp', 8), ('udp6', 32)):
        lines = Path(f'/proc/{pid}/net/{table}').read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, inode = fields[1], fields[9]
            if inode not in inodes:
                continue
            address, port = local.split(':')
            assert len(address) == width
            if width == 8:  # one little-endian 32-bit word
                text = '.'.join(str(int(address[i:i + 2], 16)) for i in (6, 4, 2, 0))
            else:  # four little-endian words; only ::1 and :: matter here
                text = '::1' if address == '0' * 24 + '01000000' else f'[{address}]'
            addresses.append(f'{text}:{int(port, 16)}')
    return addresses


@pytest.mark.ros
def test_a_node_binds_no_udp_socket_outside_loopback(tmp_path, collector):
    collector.listen('/diagnostics', DiagnosticArray)
    # The same node without our profile, as rmw_fastrtps sets up LOCALHOST by itself: the
    # finding this profile fixes (sockets on 0.0.0.0 and the machine's own address).
    plain = {'FASTRTPS_DEFAULT_PROFILES_FILE': '', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    nodes = [NodeProcess('sim_node', tmp_path, 'sim.yaml'),
             NodeProcess('perception_node', tmp_path, 'perception.yaml', env=plain)]
    with running(*nodes):
        # Discovered and heard through the profile's loopback-only transports.
        heard = collector.spin_until(lambda: any(
            status.name.startswith('sim_node') for array in collector.messages['/diagnostics']
            for status in array.status), timeout=30)
        assert heard, nodes[0].output()
        ours, default = udp_sockets(nodes[0].process.pid), udp_sockets(nodes[1].process.pid)
        this_process = udp_sockets(os.getpid())
    assert ours and all(address.startswith('127.0.0.1:') for address in ours), ours
    assert this_process and all(a.startswith('127.0.0.1:') for a in this_process), this_process
    assert any(not address.startswith('127.') for address in default), default
