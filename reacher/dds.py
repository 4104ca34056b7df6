"""Which DDS set-up the loop's processes get: loopback by default, several hosts on request.

``reacher demo``, launch/bringup.launch.py and the tests call :func:`dds_environment` before
they start a node, so every one of their processes binds its sockets as the shipped Fast
DDS profile says:

- **loopback** (default): config/fastdds_loopback.xml, every UDP socket on 127.0.0.1,
  discovery by unicast to 127.0.0.1, data over shared memory. rmw_fastrtps rewrites the
  transports of a ``LOCALHOST`` discovery range (it adds a UDP transport on every
  interface), so the range becomes ``SYSTEM_DEFAULT``: the profile as written. A
  ``ros2`` command in a ``LOCALHOST`` shell still finds these nodes through 127.0.0.1.
- **multi-host** (``--multi-host``, ``multi_host:=true``): config/fastdds_multihost.xml,
  UDPv4 on every interface and no shared memory, with the ``SUBNET`` range (multicast
  discovery) and the caller's ``ROS_STATIC_PEERS``.

A caller who set a Fast DDS profile of their own (``FASTRTPS_DEFAULT_PROFILES_FILE``) keeps
it, and only gets the ``LOCALHOST`` (or, multi-host, ``SUBNET``) range when they set none;
one of our two profiles in the environment (set by a parent: a test, a demo) counts as none.
With another RMW than Fast DDS the profile means nothing and only the range is set.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from reacher_common.paths import config_file

LOOPBACK_PROFILE = 'fastdds_loopback.xml'
MULTI_HOST_PROFILE = 'fastdds_multihost.xml'
PROFILE_VARIABLES = ('FASTRTPS_DEFAULT_PROFILES_FILE', 'FASTDDS_DEFAULT_PROFILES_FILE')
"""Fast DDS 2.x reads the first; 3.x (ROS 2 Kilted and later) the second."""
RANGE_VARIABLE = 'ROS_AUTOMATIC_DISCOVERY_RANGE'
FAST_DDS_RMWS = ('', 'rmw_fastrtps_cpp', 'rmw_fastrtps_dynamic_cpp')
"""RMW_IMPLEMENTATION values that use Fast DDS ('' = unset: Jazzy's default is Fast DDS)."""


def dds_environment(environ: Mapping[str, str], multi_host: bool = False) -> dict[str, str]:
    """The environment variables to set for the loop's processes.

    :param environ: the caller's environment (``os.environ``).
    :param multi_host: discovery and data over the network instead of loopback only.
    :return: variable -> value, only those to set or change; the rest of ``environ`` stays.
    :raises FileNotFoundError: when the package's profile is missing (a broken install).
    """
    fast_dds = environ.get('RMW_IMPLEMENTATION', '') in FAST_DDS_RMWS
    profiles = [environ[name] for name in PROFILE_VARIABLES if environ.get(name)]
    # A profile of ours was set by a parent (a test, a demo): its range was ours too.
    ours = bool(profiles) and all(Path(profile).name in (LOOPBACK_PROFILE, MULTI_HOST_PROFILE)
                                  for profile in profiles)
    discovery = '' if ours else environ.get(RANGE_VARIABLE, '')
    # OFF, SUBNET and SYSTEM_DEFAULT are the caller's deliberate choice; LOCALHOST (the
    # Makefile's default, and the READMEs') contradicts a multi-host request.
    network_range = discovery if discovery not in ('', 'LOCALHOST') else 'SUBNET'
    if not fast_dds or (profiles and not ours):
        return {RANGE_VARIABLE: network_range if multi_host else discovery or 'LOCALHOST'}
    if multi_host:
        return {PROFILE_VARIABLES[0]: str(config_file(MULTI_HOST_PROFILE)),
                RANGE_VARIABLE: network_range}
    return {PROFILE_VARIABLES[0]: str(config_file(LOOPBACK_PROFILE)),
            RANGE_VARIABLE: 'SYSTEM_DEFAULT'}


def describe(environ: Mapping[str, str]) -> str:
    """One line for logs: the profile and the discovery range in ``environ``."""
    profile = next((environ[name] for name in PROFILE_VARIABLES if environ.get(name)), None)
    peers = environ.get('ROS_STATIC_PEERS')
    return (f'DDS profile {profile or "(none)"}, discovery range '
            f'{environ.get(RANGE_VARIABLE) or "(unset)"}'
            f'{f", static peers {peers}" if peers else ""}, domain '
            f'{environ.get("ROS_DOMAIN_ID", "0")}')
