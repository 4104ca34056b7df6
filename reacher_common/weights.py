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


def load_checkpoint_payload(path: str | Path, what: str, formats: tuple[str, ...],
                            hint: str = '') -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`load_weights`, then the project's checkpoint layout, checked.

    The file holds a dict whose ``metadata`` dict names its ``format``, one of ``formats``.

    :param path: the file.
    :param what: what it should be, for the messages (``'SLAC checkpoint'``).
    :param formats: the ``format`` values the caller reads.
    :param hint: appended to the wrong-format message (what the file may be instead).
    :return: ``(payload, metadata)``, the whole dict and its ``metadata``.
    :raises FileNotFoundError: naming a missing path.
    :raises ValueError: as :func:`load_weights`, and naming the file and the format found
        when it is not one of ``formats``.
    """
    payload = load_weights(path, what)
    metadata = payload.get('metadata') if isinstance(payload, dict) else None
    if not isinstance(metadata, dict) or metadata.get('format') not in formats:
        found = metadata.get('format') if isinstance(metadata, dict) else None
        raise ValueError(f'{str(path)!r} is not a {what} of a known format (not a '
                         f'{" or ".join(formats)} checkpoint: format {found!r}){hint}')
    return payload, metadata


def _first_line(error: BaseException, limit: int = 120) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = lines[0] if lines else ''
    return text if len(text) <= limit else text[:limit] + '...'


def weights_fingerprint(state: Any) -> str:
    """A short hash of a state dict's weights: equal weights give equal fingerprints.

    :param state: a mapping of parameter names to tensors (a ``state_dict``).
    :return: 16 hex digits of the SHA-256 of every entry in name order (its name, dtype,
        shape and bytes).
    :raises ValueError: if ``state`` is not a mapping of names to tensors.
    """
    import hashlib

    import torch

    if not isinstance(state, dict) or not all(
            isinstance(value, torch.Tensor) for value in state.values()):
        raise ValueError('a weights fingerprint needs a state dict of tensors')
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f'{name}|{tensor.dtype}|{tuple(tensor.shape)}|'.encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel()
                      else b'')
    return digest.hexdigest()[:16]


def latent_model_fingerprint(path: str | Path) -> str:
    """The fingerprint of the latent model in a SLAC perception checkpoint.

    The latent model's weights count (the checkpoint's ``model`` state dict, format of
    ``reacher_perception.slac.checkpoint``), and the one part of its config that changes
    what the weights compute without weights of its own: an ``input_normalization`` other
    than 'none' (``metadata.model_config``). Refitting the checkpoint's confidence or
    changing the rest of its metadata leaves the fingerprint as it was (and a model
    without the normalisation keeps the fingerprint it had before that option existed);
    retraining the model changes it. The SLAC controller (``reacher_policy.slac``) records
    the fingerprint of the model it was trained on and refuses a perception checkpoint
    with another.

    :param path: the SLAC checkpoint (.pt), read with ``weights_only=True``.
    :return: :func:`weights_fingerprint` of its ``model``.
    :raises FileNotFoundError: naming a missing path.
    :raises ValueError: naming the file, when it is unreadable or holds no ``model``.
    """
    payload = load_weights(path, 'SLAC checkpoint')
    model = payload.get('model') if isinstance(payload, dict) else None
    try:
        fingerprint = weights_fingerprint(model)
    except ValueError:
        raise ValueError(f'SLAC checkpoint {str(path)!r} holds no latent model '
                         "('model' state dict)") from None
    metadata = payload.get('metadata')
    config = metadata.get('model_config') if isinstance(metadata, dict) else None
    normalization = config.get('input_normalization') if isinstance(config, dict) else None
    if normalization in (None, 'none'):
        return fingerprint
    import hashlib

    return hashlib.sha256(f'{fingerprint}|input_normalization={normalization}'.encode()
                          ).hexdigest()[:16]
