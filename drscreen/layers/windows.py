"""Sliding-window bookkeeping shared by the pooling layers' backward passes.

Owns the two halves of a pooling backward written with forward ops only: viewing the input
as one slice per window offset (`window_slices`), and scattering per-offset contributions
back onto the input grid (`scatter_windows`). Both split each spatial axis into stride
phases with a reshape instead of strided slices or dilations, which are slow on CPU. No
``*Grad`` op appears, so the result exports to TFLite built-ins and ONNX and is
differentiable again by autodiff.
"""

import tensorflow as tf

Dim = int | tf.Tensor


def spatial_dim(tensor: tf.Tensor, axis: int) -> Dim:
    """The size of ``axis``: a Python int when static, else a scalar tensor."""
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def _nonnegative(value: Dim) -> Dim:
    return max(value, 0) if isinstance(value, int) else tf.maximum(value, 0)


def window_offsets(pool_size: tuple[int, int]) -> list[tuple[int, int]]:
    """Window offsets ``(row, col)`` in TensorFlow's scan order (row-major)."""
    return [(row, col) for row in range(pool_size[0]) for col in range(pool_size[1])]


def _phase_slices(
    inputs: tf.Tensor, axis: int, window: int, stride: int, out_size: Dim
) -> list[tf.Tensor]:
    """For each window offset ``i`` along spatial ``axis``: elements ``i + stride * r``.

    Strided slices are slow on CPU, so the axis is padded to ``stride * blocks``, split into
    ``(blocks, stride)`` by a reshape, and offset ``i = phase + stride * q`` is the plain
    slice ``[q : q + out_size]`` of phase ``phase``. Tensors stay at most 5-D (TFLite).
    """
    blocks = out_size + (window - 1) // stride
    size = spatial_dim(inputs, axis)
    paddings = [[0, 0]] * 4
    paddings[axis] = [0, _nonnegative(blocks * stride - size)]
    fitted = tf.pad(inputs, paddings)
    fitted = fitted[:, : blocks * stride] if axis == 1 else fitted[:, :, : blocks * stride]
    dims = [spatial_dim(inputs, a) for a in (1, 2, 3)]
    dims[axis - 1 : axis] = [blocks, stride]
    phases = tf.reshape(fitted, [-1, *dims])
    slices = []
    for offset in range(window):
        quotient, phase = divmod(offset, stride)
        if axis == 1:
            slices.append(phases[:, quotient : quotient + out_size, phase])
        else:
            slices.append(phases[:, :, quotient : quotient + out_size, phase])
    return slices


def window_slices(
    inputs: tf.Tensor,
    pool_size: tuple[int, int],
    strides: tuple[int, int],
    out_hw: tuple[Dim, Dim],
) -> list[tuple[tuple[int, int], tf.Tensor]]:
    """Each window offset (in scan order) with the input element it selects at every output.

    Returns ``[((i, j), inputs[:, i + r * stride_h, j + c * stride_w, :]), ...]``, each slice
    shaped ``(N, oh, ow, C)``.
    """
    rows = _phase_slices(inputs, 1, pool_size[0], strides[0], out_hw[0])
    result = []
    for row, row_slice in enumerate(rows):
        cols = _phase_slices(row_slice, 2, pool_size[1], strides[1], out_hw[1])
        result.extend(((row, col), values) for col, values in enumerate(cols))
    return result


def scatter_windows(
    contributions: list[tuple[tuple[int, int], tf.Tensor]],
    strides: tuple[int, int],
    in_hw: tuple[Dim, Dim],
) -> tf.Tensor:
    """Sum per-offset contributions ``(N, oh, ow, C)`` back onto the ``(N, H, W, C)`` grid.

    The contribution of offset ``(i, j)`` at output ``(r, c)`` lands on input
    ``(i + r * stride_h, j + c * stride_w)``: the adjoint of `window_slices`. Writing
    ``i = ri + stride_h * qi`` (residue ``ri``, quotient ``qi``), it lands on row
    ``ri + stride_h * (qi + r)``: offsets sharing a residue are summed on the output grid
    shifted by their quotient, and the ``stride_h * stride_w`` residue maps are interleaved
    into the input grid by one stack and reshape, then padded or cropped to ``H x W``.
    """
    (row_stride, col_stride), (height, width) = strides, in_hw
    max_row_quotient = max(row // row_stride for (row, _), _ in contributions)
    max_col_quotient = max(col // col_stride for (_, col), _ in contributions)
    classes: dict[tuple[int, int], tf.Tensor] = {}
    for (row, col), values in contributions:
        (row_q, row_r), (col_q, col_r) = divmod(row, row_stride), divmod(col, col_stride)
        shifted = tf.pad(
            values,
            [
                [0, 0],
                [row_q, max_row_quotient - row_q],
                [col_q, max_col_quotient - col_q],
                [0, 0],
            ],
        )
        key = (row_r, col_r)
        classes[key] = shifted + classes[key] if key in classes else shifted
    zeros = tf.zeros_like(next(iter(classes.values())))
    rows = [
        tf.stack([classes.get((row_r, col_r), zeros) for col_r in range(col_stride)], axis=3)
        for row_r in range(row_stride)
    ]
    interleaved = tf.stack(rows, axis=2)
    out_rows = spatial_dim(zeros, 1) * row_stride
    out_cols = spatial_dim(zeros, 2) * col_stride
    grid = tf.reshape(interleaved, [-1, out_rows, out_cols, spatial_dim(zeros, 3)])
    padded = tf.pad(
        grid,
        [[0, 0], [0, _nonnegative(height - out_rows)], [0, _nonnegative(width - out_cols)], [0, 0]],
    )
    return padded[:, :height, :width, :]
