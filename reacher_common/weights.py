"""Reading a torch weights file that we did not necessarily write: safely, or not at all.

Every checkpoint the runtime loads (the SLAC estimator's, the learned controller's actor)
goes through :func:`load_weights`: ``torch.load(weights_only=True)``, which builds
tensors, numbers, strings and containers and refuses to unpickle anything else, so a
crafted file cannot run code. A file that is empty, truncated, random or needs unpickling
becomes one ``ValueError`` sentence naming it, which a node turns into a one-line start-up
error (exit code 2). torch is imported only when a file is read.
"""

from __future__ import annotations

from pathlib import Path
import pickle
from typing import Any
import warnings


def load_weights(path: str | Path, what: str) -> Any:
    """``torch.load(path, weights_only=True)`` on the CPU, with one-sentence errors.

    :param path: the file.
    :param what: what it should be, for the messages (``'actor checkpoint'``).
    :return: what the file holds (tensors, numbers, strings, lists and dicts of them).
    :raises FileNotFoundError: naming a missing path.
    :raises ValueError: naming the file, when it is empty, not a torch file (truncated,
        random bytes) or holds objects that only unpickling could build.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'{what} {str(path)!r} does not exist')
    if path.stat().st_size == 0:
        raise ValueError(f'{what} {str(path)!r} is empty')
    try:
        with warnings.catch_warnings():  # torch warns about the pickle it then refuses
            warnings.simplefilter('ignore')
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as error:
        raise ValueError(
            f'{what} {str(path)!r} cannot be loaded as weights only: it is corrupt or holds '
            f'objects that only unpickling (running code from the file) could build '
            f'({_first_line(error)})') from None
    except Exception as error:  # noqa: BLE001 -- whatever torch raises, the file is bad
        raise ValueError(f'{what} {str(path)!r} is not a readable torch file (truncated or '
                         f'corrupt?): {type(error).__name__}: {_first_line(error)}') from None


def _first_line(error: BaseException, limit: int = 120) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ''
    return text if len(text) <= limit else text[:limit] + '...'
