"""The SLAC checkpoint: its file format, and saving and loading it.

The runtime (the ``slac`` estimator) reads checkpoints through this module and training
(``reacher_perception.training.train``) writes them through it, so the estimator never
loads training code. A checkpoint is ``torch.save`` of a dict of plain types and tensors,
read back with ``torch.load(weights_only=True)``::

    model      state_dict of LatentModel
    metadata   {'format': 'reacher-slac-2', 'model_config': SlacModelConfig as dict,
                'geometry': the flat dict of reacher_common.geometry.geometry_to_dict
                            (ArmGeometry's fields and dt),
                'updates': int, 'frames_seen': int, 'wall_time_s': float,
                'train_config': SlacTrainConfig as dict,
                'scene_families': the scene families its training frames showed, with
                                  those of the checkpoint it was warm-started from
                                  (sorted names; absent: not recorded),
                'confidence_config': {'members': int, 'hidden': int}  (with confidence)
                'confidence_fit': the fit's figures                 (with confidence)
                'symmetry_fit': the symmetry calibration's figures  (when fitted)}
    confidence state_dict of reacher_perception.slac.confidence.SlacConfidence (optional:
               written by 'reacher perception confidence'; its symmetry_* buffers by
               'reacher perception calibrate-symmetries', nan before)
    optimizer  Adam's state_dict (only in the resumable ``checkpoint.pt``)

Formats: ``reacher-slac-2`` added the optional ``confidence``; a ``reacher-slac-1`` file
(the checkpoints before it) still loads, without a confidence (:func:`load_confidence`
returns None and the estimator's ``Estimate.confidence`` is nan). Any other format is
refused with a sentence naming it.

Checkpoints written before the one ``ArmGeometry`` (the shipped one among them) store
the geometry's subset ``image_size, arena_size_m, upper_arm_length_m, forearm_length_m,
goal_size_m, dt, max_joint_velocity``; ``geometry_from_dict`` reads the missing fields as
their defaults, so they load unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
import math
from pathlib import Path
from typing import Any, NamedTuple

import torch

from reacher_common.config_tools import config_from_dict
from reacher_common.geometry import (
    ArmGeometry,
    geometry_from_dict,
    geometry_to_dict,
    mismatches,
    Timing,
)
from reacher_common.paths import share_dir
from reacher_common.weights import load_checkpoint_payload
from reacher_perception.slac.confidence import SlacConfidence
from reacher_perception.slac.config import SlacModelConfig
from reacher_perception.slac.latent import LatentModel
from reacher_sim.scene import SCENE_FAMILIES

SLAC_CHECKPOINT_FORMAT = 'reacher-slac-2'
"""The ``metadata['format']`` that :func:`save_checkpoint` writes."""

SLAC_CHECKPOINT_FORMATS: tuple[str, ...] = ('reacher-slac-1', SLAC_CHECKPOINT_FORMAT)
"""The formats :func:`load_checkpoint` reads (1: no confidence)."""

DEFAULT_SLAC_CHECKPOINT = 'slac_reacher.pt'
"""File name of the shipped checkpoint under the share directory's checkpoints/."""

SLAC_GEOMETRY_FIELDS: tuple[str, ...] = (
    'image_size', 'arena_size_m', 'upper_arm_length_m', 'forearm_length_m', 'goal_size_m')
"""The geometry a camera stream must share with the checkpoint that reads it: the size of
the frames and what they show at which scale. The estimator divides commands by the
checkpoint's own ``max_joint_velocity``, so that field may differ; ``link_width_m`` and
``camera_height_m`` were not stored before ``ArmGeometry`` and are not checked."""


class SlacCheckpoint(NamedTuple):
    """A loaded checkpoint: the model and what it was trained for."""

    model: LatentModel
    """The latent model, in eval mode."""
    geometry: ArmGeometry
    """The arm and camera of its training frames."""
    timing: Timing
    """The frame period of its training sequences (its latent dynamics are per frame)."""
    payload: dict[str, Any]
    """The whole file: ``model``, ``metadata`` and, if resumable, ``optimizer``."""


def default_slac_checkpoint() -> Path:
    """The shipped checkpoint: ``<share>/checkpoints/slac_reacher.pt``.

    :raises FileNotFoundError: when the share directory cannot be found.
    """
    return share_dir() / 'checkpoints' / DEFAULT_SLAC_CHECKPOINT


def held_out_families(metadata: Mapping[str, Any]) -> tuple[str, ...] | None:
    """The scene families a checkpoint's training never showed (issue 11's held-out ones).

    :param metadata: the checkpoint's ``metadata``.
    :return: the ``reacher_sim.scene.SCENE_FAMILIES`` not in its ``scene_families``, in
        that order; None when the checkpoint does not record what it saw.
    """
    seen = metadata.get('scene_families')
    if seen is None:
        return None
    return tuple(family for family in SCENE_FAMILIES if family not in seen)


def checkpoint_payload(model: LatentModel, geometry: ArmGeometry, timing: Timing,
                       extra: dict[str, Any] | None = None,
                       confidence: SlacConfidence | None = None) -> dict[str, Any]:
    """The dict that :func:`save_checkpoint` writes (weights and metadata)."""
    metadata = {'format': SLAC_CHECKPOINT_FORMAT, 'model_config': model.config.to_dict(),
                'geometry': geometry_to_dict(geometry, timing), **(extra or {})}
    payload: dict[str, Any] = {'model': model.state_dict(), 'metadata': metadata}
    if confidence is not None:
        metadata['confidence_config'] = confidence.config()
        payload['confidence'] = confidence.state_dict()
    return payload


def save_checkpoint(path: Path, model: LatentModel, geometry: ArmGeometry, timing: Timing,
                    extra: dict[str, Any] | None = None,
                    optimizer: torch.optim.Optimizer | None = None,
                    confidence: SlacConfidence | None = None) -> Path:
    """Write a checkpoint atomically (temporary file, then rename).

    :param path: destination .pt file.
    :param model: the latent model.
    :param geometry: the arm and camera it was trained on.
    :param timing: the frame period of its training sequences.
    :param extra: more metadata (plain types only).
    :param optimizer: included for resuming when given.
    :param confidence: the fitted confidence, stored when given.
    :return: ``path``.
    """
    payload = checkpoint_payload(model, geometry, timing, extra, confidence)
    if optimizer is not None:
        payload['optimizer'] = optimizer.state_dict()
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix('.partial')
    torch.save(payload, partial)
    partial.replace(path)
    return path


def timing_mismatches(expected: Timing, actual: Timing) -> list[str]:
    """``dt`` as :func:`reacher_common.geometry.mismatches` words a geometry field."""
    if math.isclose(expected.dt, actual.dt, rel_tol=1e-9, abs_tol=1e-12):
        return []
    return [f'dt: checkpoint {expected.dt!r}, config {actual.dt!r}']


def load_checkpoint(path: Path | str, expected_model: SlacModelConfig | None = None,
                    expected_geometry: ArmGeometry | None = None,
                    expected_timing: Timing | None = None) -> SlacCheckpoint:
    """Read a checkpoint with ``weights_only=True`` and build its model.

    :param path: the .pt file.
    :param expected_model: when given, the checkpoint's model config must equal it.
    :param expected_geometry: when given, no field of the checkpoint's geometry may differ
        from it (``mismatches``).
    :param expected_timing: when given, the checkpoint's ``dt`` must equal its ``dt``.
    :return: the model (eval mode), its geometry and timing, and the whole payload.
    :raises FileNotFoundError: naming the missing path.
    :raises ValueError: with a sentence, for a file that is not a SLAC checkpoint or
        whose config, geometry or ``dt`` differs from the expected one (naming the fields).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'SLAC checkpoint {path} does not exist; train one with '
                                "'reacher perception train' or set the checkpoint path")
    payload, metadata = load_checkpoint_payload(path, 'SLAC checkpoint',
                                                SLAC_CHECKPOINT_FORMATS)
    try:
        config = config_from_dict(SlacModelConfig, metadata['model_config'])
        geometry, timing = geometry_from_dict(metadata['geometry'])
    except (KeyError, TypeError) as error:
        raise ValueError(f'SLAC checkpoint {path} is damaged: metadata lacks {error}') from None
    if expected_model is not None and config != expected_model:
        differ = sorted(key for key, value in expected_model.to_dict().items()
                        if metadata['model_config'].get(key) != value)
        raise ValueError(f'checkpoint {path} was trained with another model config '
                         f'(differs in {", ".join(differ)}); start a new run folder or '
                         'pass the same model options')
    differ_geometry = []
    if expected_geometry is not None:
        differ_geometry += mismatches(geometry, expected_geometry)
    if expected_timing is not None:
        differ_geometry += timing_mismatches(timing, expected_timing)
    if differ_geometry:
        raise ValueError(f'checkpoint {path} was trained on another geometry '
                         f'({"; ".join(differ_geometry)})')
    model = LatentModel(config)
    try:
        model.load_state_dict(payload['model'])
    except (KeyError, RuntimeError) as error:
        raise ValueError(f'SLAC checkpoint {path} is damaged: {type(error).__name__}: '
                         f'{str(error).splitlines()[0][:200]}') from None
    model.eval()
    return SlacCheckpoint(model, geometry, timing, payload)


def load_confidence(checkpoint: SlacCheckpoint) -> SlacConfidence | None:
    """The confidence stored with a loaded checkpoint.

    :param checkpoint: from :func:`load_checkpoint`.
    :return: the confidence (eval mode), or None when the file has none (every
        ``reacher-slac-1`` checkpoint, and a ``reacher-slac-2`` one written by training
        before 'reacher perception confidence').
    :raises ValueError: naming the file's problem when its confidence is damaged.
    """
    payload = checkpoint.payload
    if 'confidence' not in payload:
        return None
    sizes = payload['metadata'].get('confidence_config')
    model_config = checkpoint.model.config
    try:
        confidence = SlacConfidence(model_config.encoded_dim, model_config.state_dim,
                                    members=int(sizes['members']), hidden=int(sizes['hidden']))
        # A fit from before the blend (SlacConfidence.read_out) estimates by the filter alone;
        # one from before the symmetry calibration averages the filters' confidences.
        unfitted = confidence.state_dict()
        state = {'blend': torch.zeros(()),
                 'symmetry_weight': unfitted['symmetry_weight'],
                 'symmetry_bias': unfitted['symmetry_bias'], **payload['confidence']}
        confidence.load_state_dict(state)
    except (KeyError, TypeError, RuntimeError, ValueError) as error:
        raise ValueError(f'the confidence of the SLAC checkpoint is damaged: '
                         f'{type(error).__name__}: {str(error).splitlines()[0][:200]}'
                         ) from None
    return confidence.eval()
