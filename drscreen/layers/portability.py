"""Where a graph will run: in-process TensorFlow (its fused kernels) or any runtime (portable).

Owns one switch, read while a computation is built (eagerly, or while a `tf.function` is
traced). Outside `portable()`, drscreen uses TensorFlow's fused kernels where they are faster
than the portable formulation and give the same values: max pooling's and leaky ReLU's
backward are TensorFlow's ``MaxPoolGrad`` and ``LeakyReluGrad``, the convolution adjoint
``Conv2DBackpropInput`` (each differentiable again through its own gradient; onto RGB with a
stride the phase convolution, faster there, with those gradients), and the field-of-view mask
(`drscreen.data.fundus.field_of_view_mask`) uses bool morphology. Inside
`portable()`, every op is one that TFLite built-ins (inside LiteRT's XNNPACK delegate) and ONNX
run: the exported graphs are built there (`drscreen.export.signatures`). Tests prove both ways
equal (ties, second order, masks) and that no fused kernel reaches an export.

A `tf.function` traced outside `portable()` keeps its fused kernels when it is later called
inside it: trace a function meant for conversion inside the context (or let drscreen's export
do it).
"""

import contextlib
import contextvars
from collections.abc import Iterator

_PORTABLE = contextvars.ContextVar("drscreen_portable", default=False)


@contextlib.contextmanager
def portable() -> Iterator[None]:
    """Build every drscreen op inside this context from ops TFLite built-ins and ONNX run."""
    token = _PORTABLE.set(True)
    try:
        yield
    finally:
        _PORTABLE.reset(token)


def is_portable() -> bool:
    """Whether the computation being built must be portable (inside `portable()`)."""
    return _PORTABLE.get()
