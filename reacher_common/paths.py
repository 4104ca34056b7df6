"""Where the package's installed data (config/, launch/, checkpoints/) lives."""

from __future__ import annotations

from pathlib import Path
import sys

PACKAGE = 'reacher'


def share_dir() -> Path:
    """The package's share directory.

    Looked up, in order: the ament index (a colcon or ROS install), ``sys.prefix``/share
    (a plain ``pip install``), and the source tree (an editable install or a checkout).

    :return: a directory holding ``config/``.
    :raises FileNotFoundError: when none of them holds ``config/``.
    """
    candidates: list[Path] = []
    try:
        from ament_index_python.packages import get_package_share_directory
        candidates.append(Path(get_package_share_directory(PACKAGE)))
    except Exception:  # noqa: BLE001 - not on an ament index: fall through
        pass
    candidates.append(Path(sys.prefix) / 'share' / PACKAGE)
    candidates.append(Path(__file__).resolve().parent.parent)
    for candidate in candidates:
        if (candidate / 'config').is_dir():
            return candidate
    raise FileNotFoundError(
        f'cannot find the {PACKAGE} share directory (looked in '
        f'{", ".join(str(c) for c in candidates)}); reinstall the package')


def config_file(name: str) -> Path:
    """Path of ``config/<name>`` in the share directory.

    :raises FileNotFoundError: naming the missing file.
    """
    path = share_dir() / 'config' / name
    if not path.is_file():
        raise FileNotFoundError(f'missing parameter file {path}')
    return path
