"""The standard test battery every drscreen layer passes (keras-hub style).

Each check takes a `LayerCase` (a layer factory, an input shape, and the output shape and
parameter count worked out by hand) and asserts real behaviour: config round trip, symbolic
and eager calls with their shapes and parameter count, `.keras` save/reload, one `fit` step,
mixed precision (float16 and bfloat16), and the backprop invariants (backward ==
`tf.GradientTape`, for the layer alone and in a chain; second order == nested tapes), both
with in-process kernels and inside `drscreen.layers.portable()` (the exported ops). Export
is checked on whole chains in `export_test.py`; the zoo models run their own battery in
`tests/models/zoo_test.py`.
"""

import contextlib
import dataclasses
from collections.abc import Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from drscreen import layers
from drscreen.heatmaps.backprop import Trace, backward

RTOL = 1e-5
"""Max abs difference allowed, relative to the largest reference value."""

BUILDS = {"in_process": contextlib.nullcontext, "portable": layers.portable}
"""The two ways a backward is built: in-process kernels, or the exported ops."""


@dataclasses.dataclass(frozen=True)
class LayerCase:
    """A layer under test: ``make()`` builds a fresh one; it takes ``(2, *input_shape)`` and
    gives ``(2, *output_shape)`` with ``params`` parameters (weights and statistics)."""

    name: str
    make: Callable[[], layers.BackpropLayer]
    output_shape: tuple[int, ...]
    params: int
    input_shape: tuple[int, ...] = (16, 16, 3)
    mixed_l2: Mapping[str, float] | None = None
    """For a composite whose float16/bfloat16 rounding can flip a ReLU sign or a pooling
    choice inside it (rerouting that pixel's gradient): per policy, the largest relative L2
    distance of each image's mixed backward from float32's, instead of `MIXED_POLICIES`'
    element-wise bound (another image's backward must be at least 3 times further)."""

    def __str__(self) -> str:
        return self.name

    @property
    def spatial(self) -> bool:
        return len(self.input_shape) == 3

    def inputs(self, seed: int = 0) -> tf.Tensor:
        """Random inputs of both signs, seeded."""
        rng = np.random.default_rng(seed)
        return tf.constant(rng.normal(size=(2, *self.input_shape)).astype("float32"))

    def prefix(self) -> layers.BackpropLayer:
        """A layer with weights to put before the layer in a chain (keeps the shape)."""
        if self.spatial:
            return layers.Conv2D(self.input_shape[-1], 3, kernel_initializer="glorot_uniform")
        return layers.Dense(self.input_shape[-1], kernel_initializer="glorot_uniform")


def assert_close(actual, expected, rtol: float = RTOL) -> None:
    """Max abs difference <= rtol * max |expected| (and exact zeros where expected is 0)."""
    actual, expected = np.asarray(actual, "float64"), np.asarray(expected, "float64")
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(np.abs(expected).max(), 1e-30)
    diff = np.abs(actual - expected).max()
    assert diff <= rtol * scale, f"max abs diff {diff:.3g} > {rtol} x {scale:.3g}"


def run_chain(
    chain: list[layers.BackpropLayer], x: tf.Tensor, training: bool = False
) -> tuple[tf.Tensor, Trace]:
    """Forward through ``chain`` keeping a `Trace` (any input rank, unlike the image engine)."""
    inputs, outputs, saved = [], [], []
    for layer in chain:
        inputs.append(x)
        x, extra = layer.forward(x, training=training)
        outputs.append(x)
        saved.append(extra)
    return x, Trace(tuple(chain), tuple(inputs), tuple(outputs), tuple(saved))


def _seed_like(tensor: tf.Tensor) -> tf.Tensor:
    rng = np.random.default_rng(7)
    return tf.constant(rng.normal(size=tensor.shape).astype(tensor.dtype.name))


def _chain(case: LayerCase, alone: bool) -> list[layers.BackpropLayer]:
    if alone:
        return [case.make()]
    return [case.prefix(), case.make(), layers.LeakyReLU(0.1)]


def check_config_round_trip(case: LayerCase) -> None:
    layer = case.make()
    clone = type(layer).from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()


def check_symbolic_and_eager(case: LayerCase) -> None:
    layer = case.make()
    symbolic = layer(keras.Input(case.input_shape))
    eager = layer(case.inputs())
    assert tuple(symbolic.shape[1:]) == tuple(eager.shape[1:]) == case.output_shape
    assert eager.shape[0] == 2
    assert layer.count_params() == case.params
    assert np.all(np.isfinite(eager.numpy()))


def check_save_reload(case: LayerCase, tmp_path) -> None:
    model = keras.Sequential([keras.Input(case.input_shape), case.prefix(), case.make()])
    path = str(tmp_path / "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    x = case.inputs()
    np.testing.assert_array_equal(reloaded(x).numpy(), model(x).numpy())
    assert isinstance(reloaded.layers[-1], type(model.layers[-1]))


def check_fit_step(case: LayerCase) -> None:
    model = keras.Sequential(
        [
            keras.Input(case.input_shape),
            case.prefix(),
            case.make(),
            layers.Flatten(),
            layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(0.01), loss="mse")
    before = [w.numpy().copy() for w in model.trainable_weights]
    history = model.fit(case.inputs(), np.ones((2, 1), "float32"), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.array_equal(b, a) for b, a in zip(before, after, strict=True))


MIXED_POLICIES = {"mixed_float16": (tf.float16, 1e-2), "mixed_bfloat16": (tf.bfloat16, 5e-2)}
"""The mixed-precision policies training accepts: their compute dtype, and the largest
backward difference from float32's allowed, relative to the largest float32 value (float16
keeps 11 significant bits, bfloat16 8)."""


def check_mixed_precision(case: LayerCase, policy: str) -> None:
    """The layer under ``policy``, with the float32 layer's weights, computes in the
    policy's dtype, and its backward equals the float32 backward to the dtype's precision.
    Inputs are rounded to that dtype first, so a pooling tie is a tie in both."""
    dtype, rtol = MIXED_POLICIES[policy]
    x = tf.cast(tf.cast(case.inputs(), dtype), tf.float32)
    reference = case.make()
    output, trace = run_chain([reference], x)
    seed = _seed_like(output)
    expected = backward(trace, seed)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        layer = case.make()
        run_chain([layer], x)
        layer.set_weights(reference.get_weights())
        mixed_output, mixed_trace = run_chain([layer], x)
        assert mixed_output.dtype == dtype
        grad = backward(mixed_trace, seed)
    finally:
        keras.config.set_dtype_policy(previous)
    assert grad.shape == (2, *case.input_shape)
    assert_close(mixed_output, output, rtol)
    if case.mixed_l2 is None:
        assert_close(grad, expected, rtol)
        return
    grad, expected = np.asarray(grad, "float64"), np.asarray(expected, "float64")
    distances = [
        np.linalg.norm(grad[i] - expected[i]) / np.linalg.norm(expected[i]) for i in (0, 1)
    ]
    swapped = [
        np.linalg.norm(grad[i] - expected[1 - i]) / np.linalg.norm(expected[1 - i]) for i in (0, 1)
    ]
    assert max(distances) <= case.mixed_l2[policy] <= min(swapped) / 3, (distances, swapped)


def check_backward_matches_tape(case: LayerCase, alone: bool, training: bool = False) -> None:
    """backward(seed) == d(sum(seed * output)) / d(input) from tf.GradientTape."""
    chain = _chain(case, alone)
    x = case.inputs()
    with tf.GradientTape() as tape:
        tape.watch(x)
        output, trace = run_chain(chain, x, training)
        seed = _seed_like(output)
        score = tf.reduce_sum(seed * output)
    expected = tape.gradient(score, x)
    assert_close(backward(trace, seed, training=training), expected)


def check_second_order(case: LayerCase, alone: bool) -> None:
    """d(mean |backward|) / d(weights, input) == the same through nested tapes."""
    chain = _chain(case, alone)
    x = case.inputs()
    run_chain(chain, x)
    weights = [w.value for layer in chain for w in layer.trainable_weights]
    sources = [x, *weights]
    zero = tf.UnconnectedGradients.ZERO

    with tf.GradientTape() as outer:
        outer.watch(x)
        output, trace = run_chain(chain, x)
        loss = tf.reduce_mean(tf.abs(backward(trace, _seed_like(output))))
    ours = outer.gradient(loss, sources, unconnected_gradients=zero)

    with tf.GradientTape() as outer:
        outer.watch(x)
        with tf.GradientTape() as inner:
            inner.watch(x)
            output, _ = run_chain(chain, x)
            score = tf.reduce_sum(_seed_like(output) * output)
        loss = tf.reduce_mean(tf.abs(inner.gradient(score, x)))
    expected = outer.gradient(loss, sources, unconnected_gradients=zero)

    for got, want in zip(ours, expected, strict=True):
        assert_close(got, want)


def run_battery(case: LayerCase, tmp_path) -> None:
    """Every check of the battery, in order."""
    check_config_round_trip(case)
    check_symbolic_and_eager(case)
    check_save_reload(case, tmp_path)
    check_fit_step(case)
    for policy in MIXED_POLICIES:
        check_mixed_precision(case, policy)
    for build in BUILDS.values():
        with build():
            for alone in (True, False):
                check_backward_matches_tape(case, alone)
                check_second_order(case, alone)
