"""Sliding-window bookkeeping shared by the pooling layers' backward passes, one axis at a time.

Owns the two halves of a pooling backward written with forward ops only: viewing the input
as one slice per window offset along a spatial axis (`axis_slices`), and scattering
per-offset contributions back onto the input grid along that axis (`scatter_axis`). A 2-D
window is handled as a window along the rows of 1-D windows along the columns (max and sum
both factor that way), so a k x k window costs 2k slices or scatters instead of k². Both
helpers split the axis into stride phases with a reshape instead of strided slices or
dilations, which are slow on CPU. No ``*Grad`` op appears, so the result exports to TFLite
built-ins and ONNX and is differentiable again by autodiff. Tensors stay 4-D.
"""

import tensorflow as tf

Dim = int | tf.Tensor


def spatial_dim(tensor: tf.Tensor, axis: int) -> Dim:
    """The size of ``axis``: a Python int when static, else a scalar tensor."""
    static = tensor.shape[axis]
    return static if static is not None else tf.shape(tensor)[axis]


def nonnegative(value: Dim) -> Dim:
    """``max(value, 0)`` for a Python int or a scalar tensor."""
    return max(value, 0) if isinstance(value, int) else tf.maximum(value, 0)


def _fit_axis(tensor: tf.Tensor, axis: int, size: Dim) -> tf.Tensor:
    """``tensor`` zero-padded or cropped at the end of spatial ``axis`` to length ``size``.

    Skips the pad and the crop when static shapes show they change nothing. The crop is a
    ``Slice``, whose gradient (a pad) is much cheaper than a strided slice's.
    """
    length = spatial_dim(tensor, axis)
    static = isinstance(length, int) and isinstance(size, int)
    if not (static and length >= size):
        paddings = [[0, 0]] * 4
        paddings[axis] = [0, nonnegative(size - length)]
        tensor = tf.pad(tensor, paddings)
    if static and length == size:
        return tensor
    sizes = [-1] * 4
    sizes[axis] = size
    return tf.slice(tensor, [0] * 4, sizes)


def axis_slices(
    inputs: tf.Tensor, axis: int, offsets: int, stride: int, out_size: Dim
) -> list[tf.Tensor]:
    """For window offsets ``i < offsets`` along spatial ``axis``: elements ``i + stride * r``.

    Each slice has ``out_size`` elements along ``axis`` (``r < out_size``). The axis is
    padded or cropped to ``stride * blocks`` (kept whole when its static length is a multiple
    of the stride) and reshaped to ``blocks``, its stride phases joined to the next axis;
    offset ``i = phase + stride * q`` is then the plain 4-D slice ``[q : q + out_size]`` of
    that axis and the ``phase``-th part of the next one. Unit-stride slices without a dropped
    axis are what LiteRT's XNNPACK delegate runs (a strided slice with ``shrink_axis_mask``
    falls back to TFLite's reference kernel).
    """
    if offsets == 0:
        return []
    blocks = out_size + (offsets - 1) // stride
    size = spatial_dim(inputs, axis)
    if isinstance(size, int) and isinstance(blocks, int) and size % stride == 0:
        blocks = max(blocks, size // stride)  # the whole axis: no pad, no crop
    fitted = _fit_axis(inputs, axis, blocks * stride)
    dims = [spatial_dim(inputs, a) for a in (1, 2, 3)]
    part = dims[axis]  # length of the next axis: one phase's share of the joined axis
    dims[axis - 1], dims[axis] = blocks, stride * part
    phases = tf.reshape(fitted, [-1, *dims])
    slices = []
    for offset in range(offsets):
        quotient, phase = divmod(offset, stride)
        rows = slice(quotient, quotient + out_size)
        columns = slice(phase * part, (phase + 1) * part)
        slices.append(phases[:, rows, columns] if axis == 1 else phases[:, :, rows, columns])
    return slices


def scatter_axis(contributions: list[tf.Tensor], axis: int, stride: int, size: Dim) -> tf.Tensor:
    """Sum per-offset contributions back onto an axis of length ``size``: `axis_slices`' adjoint.

    ``contributions[i]`` holds, at window ``r`` along spatial ``axis``, what lands on element
    ``i + stride * r``. Writing ``i = phase + stride * q``, it lands on ``phase + stride *
    (q + r)``: contributions sharing a phase are summed on the window grid shifted by ``q``,
    and the ``stride`` phase maps are interleaved by one concatenation and reshape, then padded
    or cropped to ``size``.
    """
    last_quotient = (len(contributions) - 1) // stride
    phases: dict[int, tf.Tensor] = {}
    for offset, values in enumerate(contributions):
        quotient, phase = divmod(offset, stride)
        if last_quotient:
            paddings = [[0, 0]] * 4
            paddings[axis] = [quotient, last_quotient - quotient]
            values = tf.pad(values, paddings)
        phases[phase] = values + phases[phase] if phase in phases else values
    first = phases[0]
    if stride == 1:
        return _fit_axis(first, axis, size)
    zeros = tf.zeros_like(first) if len(phases) < stride else None
    # Concatenating along the next axis lays the phases out as stacking them after ``axis``
    # would, and its gradient (slices) is much cheaper than that of a stack (unstack).
    joined = tf.concat([phases.get(phase, zeros) for phase in range(stride)], axis=axis + 1)
    dims = [spatial_dim(first, a) for a in (1, 2, 3)]
    dims[axis - 1] = dims[axis - 1] * stride
    return _fit_axis(tf.reshape(joined, [-1, *dims]), axis, size)
