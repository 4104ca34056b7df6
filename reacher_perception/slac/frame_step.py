"""One frame of the ``slac`` estimator as one network, run by torch or by ONNX Runtime.

:class:`FrameStep` is the estimator's whole per-frame computation on the loaded model:
the encoder on the uint8 frame, the filter step (``LatentModel.filter_first`` or
``filter_next``), the state read-out (``LatentModel.state``) and, when the checkpoint has
one, the confidence (``SlacConfidence.frame_heads``, ``confidence.signals`` and the
calibration) and the estimate's blend of the two read-outs (``SlacConfidence.read_out``),
each by calling the module that defines it, so the two runtimes compute the same thing by
construction.

It steps B filters at once, one row each (the estimator's test-time symmetries: the same
frame mapped by B elements of the square's symmetry group); B = 1 is one filter.

:class:`OnnxFrameStep` exports the two :class:`FrameStep` variants (first frame, next
frame) for the estimator's B from the loaded torch model when the estimator starts, in
memory, and runs them with ONNX Runtime on one thread: no second artifact on disk that
could drift from the checkpoint. Export and session creation take ~0.5 s together.
Measured on the shipped checkpoint (``benchmarks/slac_inference.py``: one thread, 500
real frames, each estimator alone, one filter): ``SlacEstimator.estimate`` takes 0.40 ms
median with ONNX Runtime against 1.47 ms in torch (the encoder, the filter's MLPs and the
confidence are many small ops, each paying torch's dispatch cost); graph optimisation
ORT_ENABLE_ALL ran the step in 0.35 ms against 0.50 ms with EXTENDED or BASIC. The
outputs agree within 1e-5 absolute (test/test_slac_onnx.py).

The export uses torch's TorchScript-based exporter (``dynamo=False``; it needs the
``onnx`` package): the ``torch.export`` path refuses ``torch.distributions.Normal``'s
argument checks in ``Gaussian.forward``. ONNX has no ``rad2deg``; :func:`_export` maps
it to a multiplication by the same float32 constant torch uses.
"""

from __future__ import annotations

from collections.abc import Callable
import io
import math
import warnings

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from reacher_common.geometry import ArmGeometry
from reacher_perception.slac.confidence import signals, SlacConfidence
from reacher_perception.slac.latent import LatentModel

RUNTIMES: tuple[str, ...] = ('onnxruntime', 'torch')
"""The values of ``PerceptionConfig.runtime``: how a learned estimator runs its network."""

OUTPUTS: tuple[str, ...] = ('state', 'z1', 'z2', 'confidence', 'stds')
"""What a frame step returns, in order (the last two only with a confidence); ``state`` is
the estimate's (the filter's read-out, blended by ``SlacConfidence.read_out`` when there
is a confidence)."""

_OPSET = 17

StepOutputs = list[npt.NDArray[np.float32]]
"""``OUTPUTS`` as arrays, one row per filter: state (B, 8), z1 (B, z1_dim), z2 (B,
z2_dim) and, with a confidence, confidence (B,) and stds (B, 3) (rad, m, m)."""

FrameStepRunner = Callable[[npt.NDArray[np.uint8], npt.NDArray[np.float32] | None,
                            npt.NDArray[np.float32]], StepOutputs]
"""A runtime's frame step: ``(images (B, H, W, 3) uint8, previous z2 (B, z2_dim) float32
or None for new filters, actions (B, action_dim) float32) -> StepOutputs``: B filters
stepped at once (the estimator's test-time symmetries), each on its own row."""


class FrameStep(nn.Module):
    """The per-frame computation of the ``slac`` estimator, as one module.

    :param model: the latent model (eval mode).
    :param confidence: the fitted confidence, or None (then no confidence outputs).
    :param geometry: the checkpoint's arm (reach and link lengths for the signals).
    :param first: True for the first frame after a reset (``filter_first``), False for
        the following ones (``filter_next``).
    """

    def __init__(self, model: LatentModel, confidence: SlacConfidence | None,
                 geometry: ArmGeometry, first: bool) -> None:
        super().__init__()
        self.model = model
        self.confidence = confidence
        self.geometry = geometry
        self.first = first

    def forward(self, image: torch.Tensor, z2: torch.Tensor, action: torch.Tensor
                ) -> tuple[torch.Tensor, ...]:
        """One frame for each of B filters.

        :param image: (B, H, W, 3) uint8 rgb8, each filter's frame.
        :param z2: (B, z2_dim) float32, each filter's previous z2 (unused when ``first``).
        :param action: (B, action_dim) float32 in [-1, 1], the command since the previous
            frame over ``max_joint_velocity``, as each filter sees it (unused when
            ``first``).
        :return: the tensors of :data:`OUTPUTS` (see :data:`StepOutputs` for shapes).
        """
        model = self.model
        frame = image.permute(0, 3, 1, 2).float().div(255.0)
        feature = model.encoder(frame)
        if self.first:
            z1, z2_next = model.filter_first(feature)
        else:
            z1, z2_next = model.filter_next(feature, z2, action)
        filtered = model.state(z1, z2_next)
        if self.confidence is None:
            return filtered, z1, z2_next
        geometry = self.geometry
        heads = self.confidence.frame_heads
        frame_states = heads(feature)
        confidence, stds = self.confidence(signals(
            frame_states, filtered, heads.distance(feature), geometry.reach_m,
            geometry.upper_arm_length_m, geometry.forearm_length_m))
        read = self.confidence.read_out(filtered, frame_states, geometry.reach_m)
        return read, z1, z2_next, confidence, stds


class TorchFrameStep:
    """:class:`FrameStep` in torch: the reference, and the fallback (``runtime: torch``).

    :param model: the latent model (eval mode).
    :param confidence: the fitted confidence, or None.
    :param geometry: the checkpoint's arm.
    :param batch: the filters stepped together (torch takes any number of rows; the
        argument is :class:`OnnxFrameStep`'s).
    """

    def __init__(self, model: LatentModel, confidence: SlacConfidence | None,
                 geometry: ArmGeometry, batch: int = 1) -> None:
        self.steps = {first: FrameStep(model, confidence, geometry, first).eval()
                      for first in (True, False)}

    @torch.inference_mode()
    def __call__(self, image: npt.NDArray[np.uint8], z2: npt.NDArray[np.float32] | None,
                 action: npt.NDArray[np.float32]) -> StepOutputs:
        """One frame: ``z2`` None starts a new filter; see :meth:`FrameStep.forward`."""
        first = z2 is None
        previous = torch.zeros(0) if z2 is None else torch.from_numpy(z2)
        outputs = self.steps[first](torch.from_numpy(image), previous,
                                    torch.from_numpy(action))
        return [output.numpy() for output in outputs]


def _rad2deg(graph: object, value: object) -> object:
    """ONNX for ``aten::rad2deg``: ``value * float32(180 / pi)``, as torch computes it."""
    scale = torch.tensor(180.0 / math.pi, dtype=torch.float32)
    return graph.op('Mul', value, graph.op('Constant', value_t=scale))  # type: ignore[attr-defined]


def _export(step: FrameStep, image_size: int, z2_dim: int, action_dim: int,
            batch: int) -> bytes:
    """The ONNX model of one :class:`FrameStep` for ``batch`` filters, serialized.

    :raises RuntimeError: if torch cannot export it (the message says to use
        ``runtime: torch``).
    """
    torch.onnx.register_custom_op_symbolic('aten::rad2deg', _rad2deg, _OPSET)
    example = (torch.zeros(batch, image_size, image_size, 3, dtype=torch.uint8),
               torch.zeros(batch, z2_dim), torch.zeros(batch, action_dim))
    inputs = ['image'] if step.first else ['image', 'previous_z2', 'action']
    outputs = list(OUTPUTS if step.confidence is not None else OUTPUTS[:3])
    buffer = io.BytesIO()
    try:
        with warnings.catch_warnings():
            # the TorchScript exporter's deprecation notice and tracer warnings
            warnings.simplefilter('ignore')
            torch.onnx.export(step, example, buffer,  # type: ignore[arg-type]  # BytesIO works
                              input_names=inputs, output_names=outputs,
                              opset_version=_OPSET, dynamo=False)
    except Exception as error:  # noqa: BLE001 - any exporter failure means the same
        raise RuntimeError(f'could not export the SLAC model to ONNX ({error}); '
                           f'set the perception parameter runtime: torch') from error
    return buffer.getvalue()


class OnnxFrameStep:
    """:class:`FrameStep` exported at start and run by ONNX Runtime on one thread.

    :param model: the latent model (eval mode).
    :param confidence: the fitted confidence, or None.
    :param geometry: the checkpoint's arm.
    :param batch: the filters B stepped together; every call passes exactly B rows.
    :raises RuntimeError: if the export fails (naming ``runtime: torch`` as the way out).
    :raises ModuleNotFoundError: without the onnxruntime package (naming the way out too).
    """

    def __init__(self, model: LatentModel, confidence: SlacConfidence | None,
                 geometry: ArmGeometry, batch: int = 1) -> None:
        try:
            import onnxruntime  # only this runtime needs it
        except ImportError as error:
            raise ModuleNotFoundError(
                f"runtime 'onnxruntime' needs the onnxruntime package ({error}): "
                'pip install onnxruntime, or set runtime: torch', name='onnxruntime') from error

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        config = model.config
        self.sessions = {}
        for first in (True, False):
            step = FrameStep(model, confidence, geometry, first).eval()
            with torch.no_grad():
                exported = _export(step, config.image_size, config.z2_dim, config.action_dim,
                                   batch)
            self.sessions[first] = onnxruntime.InferenceSession(
                exported, options, providers=['CPUExecutionProvider'])

    def __call__(self, image: npt.NDArray[np.uint8], z2: npt.NDArray[np.float32] | None,
                 action: npt.NDArray[np.float32]) -> StepOutputs:
        """One frame: ``z2`` None starts a new filter; see :meth:`FrameStep.forward`."""
        if z2 is None:
            outputs = self.sessions[True].run(None, {'image': image})
        else:
            outputs = self.sessions[False].run(None, {'image': image, 'previous_z2': z2,
                                                      'action': action})
        return list(outputs)
