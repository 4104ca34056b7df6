"""The classical estimator's model of the drawing, and its least-squares fit.

Colour unmixing, soft edges, capsules and squares, and Levenberg-Marquardt, as
``reacher_perception.classical`` uses them.

Plain numpy; every function works in pixel units in the shoulder-centred frame
``world * pixels_per_metre``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from reacher_sim.render import RenderStyle

FloatArray = npt.NDArray[np.float64]

# Edges are modelled as a ramp of coverage from 0 to 1 over 1 + 2 * this many pixels, a
# smoothstep: the 1-pixel box filter of a sharp edge, widened by anti-aliasing. Being smooth,
# it keeps a gradient where a hard ramp has none (an edge exactly between two pixel
# centres), so a fit cannot stall half a pixel off.
_EDGE_SOFTNESS_PX = 0.25
# Levenberg-Marquardt stops when no parameter moves by more than this (radians or pixels).
_STEP_TOLERANCE = 1e-3


def unmixing_matrix(style: RenderStyle) -> npt.NDArray[np.float32]:
    """Affine map from rgb8 to the blend weights of the goal, the upper arm and the forearm.

    A pixel ``rgb = sum_k alpha_k * colour_k`` with ``sum_k alpha_k = 1`` over
    (background, goal, upper arm, forearm) is inverted as ``alpha = matrix @ (r, g, b, 1)``
    (the background's weight, the rest to one, is left out).

    :param style: the scene colours.
    :return: (3, 4) float32, rows (goal, upper arm, forearm), for rgb in 0-255; the form
        ``cv2.transform`` takes.
    :raises ValueError: if the four colours are affinely dependent (not separable).
    """
    colours = np.array([style.background, style.goal, style.upper_arm, style.forearm],
                       dtype=np.float64)
    system = np.vstack([colours.T, np.ones(4)])
    if abs(np.linalg.det(system)) < 1e-6 * 255.0 ** 3:
        raise ValueError(f'the colours of {style} cannot be told apart by unmixing')
    return np.linalg.inv(system)[1:].astype(np.float32)


def soft_ramp(raw: FloatArray, in_place: bool = False) -> tuple[FloatArray, FloatArray]:
    """Coverage of a pixel by a shape from how far inside its edge the pixel centre is.

    A smoothstep from 0 at ``raw = -_EDGE_SOFTNESS_PX`` to 1 at ``1 + _EDGE_SOFTNESS_PX``,
    0.5 at ``raw = 0.5`` (the pixel centre on the edge), as for ``clip(raw, 0, 1)``.

    :param raw: (N,) float64, the distance of the pixel centre inside the edge plus 0.5,
        pixels.
    :param in_place: reuse ``raw``'s buffer (its values are lost) for the coverage.
    :return: ``(coverage, slope)``, (N,) float64: coverage in [0, 1] and its derivative.
    """
    width = 1.0 + 2.0 * _EDGE_SOFTNESS_PX
    ramp = raw if in_place else raw.copy()
    ramp += _EDGE_SOFTNESS_PX
    ramp *= 1.0 / width
    np.clip(ramp, 0.0, 1.0, out=ramp)
    rest = 1.0 - ramp
    slope = ramp * rest
    slope *= 6.0 / width
    # ramp^2 * (ramp + 3 rest), evaluated as ramp * ramp * (ramp + 3 * rest).
    rest *= 3.0
    rest += ramp
    coverage = ramp * ramp
    coverage *= rest
    return coverage, slope


def capsule_coverage(x: FloatArray, y: FloatArray, starts: FloatArray, ends: FloatArray,
                     half_width: float
                     ) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray, FloatArray]:
    """Coverage of pixels by capsules, with what its derivatives need.

    Coverage is ``soft_ramp(half_width + 0.5 - distance)``, with ``distance`` from the
    pixel centre to the segment from ``starts[k]`` to ``ends[k]``.

    :param x: (N,) float64 pixel centres, pixels.
    :param y: (N,) float64 pixel centres, pixels.
    :param starts: (K, 2) float64 the segments' starts (x, y), pixels.
    :param ends: (K, 2) float64 the segments' ends (x, y), pixels.
    :param half_width: half the capsules' width, pixels.
    :return: ``(coverage, slope, along, normal_x, normal_y)``, each (K, N) float64:
        coverage in [0, 1]; its derivative with respect to the half-width (minus that with
        respect to the distance); the closest point's position along the segment in
        [0, 1]; the unit vector from the closest point to the pixel.
    """
    # Per segment: its direction and inverse squared length, as (K, 1) columns.
    delta = ends - starts
    delta_x, delta_y = delta[:, :1], delta[:, 1:]
    inverse_length_sq = 1.0 / np.maximum(delta_x * delta_x + delta_y * delta_y, 1e-12)
    # Then (K, N), in place where a buffer is free: at the arm's ~2 x 400 pixels a numpy
    # call's overhead is most of its cost, so fewer temporaries are faster.
    offset_x, offset_y = x - starts[:, :1], y - starts[:, 1:]
    along = offset_x * delta_x
    along += offset_y * delta_y
    along *= inverse_length_sq
    np.clip(along, 0.0, 1.0, out=along)
    normal_x = offset_x - along * delta_x
    normal_y = offset_y - along * delta_y
    # sqrt(x^2 + y^2) rather than hypot: no overflow is possible at pixel scale and it is
    # half the cost; it may differ from hypot in the last bit.
    distance = normal_x * normal_x
    distance += normal_y * normal_y
    np.sqrt(distance, out=distance)
    np.maximum(distance, 1e-9, out=distance)
    normal_x /= distance
    normal_y /= distance
    # soft_ramp(half_width + 0.5 - distance), reusing ``distance``'s buffer.
    raw = np.subtract(half_width + 0.5, distance, out=distance)
    coverage, slope = soft_ramp(raw, in_place=True)
    return coverage, slope, along, normal_x, normal_y


def square_model(params: FloatArray, half_side: float, x: FloatArray, y: FloatArray,
                  visible: FloatArray, observed: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Residual and Jacobian of an axis-aligned square seen through the arm.

    :param params: (2,) centre x, centre y, pixels.
    :param half_side: half the square's side, pixels.
    :param x: (N,) float64 pixel centres, pixels.
    :param y: (N,) float64 pixel centres, pixels.
    :param visible: (N,) float64, 1 - the alpha of the arm drawn over the square.
    :param observed: (N,) float64 alpha of the square's colour.
    :return: ``(residual, jacobian)``: (N,) model minus observed, (N, 2) float64.
    """
    offset_x, offset_y = x - params[0], y - params[1]
    cover_x, slope_x = soft_ramp(half_side + 0.5 - np.abs(offset_x))
    cover_y, slope_y = soft_ramp(half_side + 0.5 - np.abs(offset_y))
    ramp_x, ramp_y = slope_x * visible, slope_y * visible
    jacobian = np.empty((x.size, 2))
    jacobian[:, 0] = np.sign(offset_x) * ramp_x * cover_y
    jacobian[:, 1] = np.sign(offset_y) * ramp_y * cover_x
    return cover_x * cover_y * visible - observed, jacobian


def levenberg_marquardt(model: Callable[[FloatArray], tuple[FloatArray, FloatArray]],
                         params: FloatArray, residual: FloatArray, jacobian: FloatArray,
                         max_iterations: int, size_bounds: tuple[float, float] | None = None
                         ) -> FloatArray:
    """Minimise the squared residual of ``model`` from ``params``.

    Marquardt's damping (scaled by the diagonal of J^T J); a step is kept only if it lowers
    the cost. With ``size_bounds``, the last parameter is a size kept within them.

    :param model: params (P,) -> (residual (M,), jacobian (M, P)).
    :param params: (P,) float64 starting point.
    :param residual: (M,) float64 residual at ``params``.
    :param jacobian: (M, P) float64 Jacobian at ``params``.
    :param max_iterations: most model evaluations.
    :param size_bounds: (low, high) bounds of the last parameter, or None.
    :return: (P,) float64 the fitted parameters.
    """
    cost = float(residual @ residual)
    damping = 1e-3
    size = params.size
    for _ in range(max_iterations):
        # J^T J against a copy of J: numpy computes A.T @ A (one buffer) by BLAS syrk,
        # ~4x slower than gemm at a few hundred rows by 2-3 columns.
        normal = jacobian.T @ jacobian.copy()
        gradient = jacobian.T @ residual
        diagonal = normal.ravel()[::size + 1]  # a view: normal is contiguous
        diagonal *= 1.0 + damping
        diagonal += 1e-9
        step = -_solve(normal, gradient)
        trial = params + step
        if size_bounds is not None:
            trial[-1] = min(max(trial[-1], size_bounds[0]), size_bounds[1])
        if max(abs(value) for value in step.tolist()) < _STEP_TOLERANCE:
            return trial  # converged: a step this small need not be checked
        trial_residual, trial_jacobian = model(trial)
        trial_cost = float(trial_residual @ trial_residual)
        if trial_cost < cost:
            params, residual, jacobian, cost = trial, trial_residual, trial_jacobian, trial_cost
            damping *= 0.3
        else:
            damping *= 10.0
    return params


def _solve(matrix: FloatArray, vector: FloatArray) -> FloatArray:
    """``numpy.linalg.solve`` for the damped normal equations, by Cramer's rule at 2 and 3.

    The damped J^T J is symmetric positive definite (its diagonal has 1e-9 added), so
    its determinant is positive; at this size Cramer's rule in Python floats is ~8x
    faster than LAPACK's call overhead and as accurate.

    :param matrix: (P, P) float64, symmetric positive definite.
    :param vector: (P,) float64.
    :return: (P,) float64, ``matrix^-1 vector``.
    """
    if vector.size == 2:
        (a, b), (c, d) = matrix.tolist()
        u, v = vector.tolist()
        determinant = a * d - b * c
        return np.array([(u * d - b * v) / determinant, (a * v - c * u) / determinant])
    if vector.size == 3:
        (a, b, c), (d, e, f), (g, h, i) = matrix.tolist()
        u, v, w = vector.tolist()
        # Cofactors of the first row, then the determinant by its expansion.
        co_a, co_b, co_c = e * i - f * h, f * g - d * i, d * h - e * g
        determinant = a * co_a + b * co_b + c * co_c
        return np.array([
            (u * co_a + b * (f * w - v * i) + c * (v * h - e * w)) / determinant,
            (a * (v * i - f * w) + u * co_b + c * (d * w - v * g)) / determinant,
            (a * (e * w - v * h) + b * (v * g - d * w) + u * co_c) / determinant])
    return np.asarray(np.linalg.solve(matrix, vector), dtype=np.float64)
