"""The heatmap-aware step against nested `tf.GradientTape`s on a tiny drscreen model."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import layers
from drscreen.data.fundus import field_of_view_mask
from drscreen.training import mixed_precision
from drscreen.training.heatmap_aware import HeatmapAwareModel

SIZE = 16


def _tiny_model() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input((SIZE, SIZE, 3)),
            layers.InputNormalization(),
            layers.Conv2D(4, 3, strides=2, untied_bias=True),
            layers.LeakyReLU(),
            layers.MaxPooling2D(),
            layers.Conv2D(6, 3),
            layers.LeakyReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1),
        ]
    )


def _fundus_batch(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    disc = ((yy - 7.5) ** 2 + (xx - 7.5) ** 2 <= 7.0**2)[..., np.newaxis]
    images = (rng.uniform(60, 220, (n, SIZE, SIZE, 3)) * disc).astype(np.float32)
    return images, np.array([0.0, 2.0, 4.0][:n], np.float32)


def _nested_tape_gradients(model, images, grades, weight, l2):
    """Loss = MSE + weight * mean|dy/dx| over the FOV + l2 * sum(kernel^2), by two tapes."""
    x = tf.constant(images)
    fov = field_of_view_mask(x)
    with tf.GradientTape() as outer:
        with tf.GradientTape() as inner:
            inner.watch(x)
            y = model(x, training=False)
            total = tf.reduce_sum(y)
        heatmap = tf.reduce_sum(tf.abs(inner.gradient(total, x)), axis=-1)
        penalty = tf.reduce_mean(
            tf.reduce_sum(heatmap * fov, axis=[1, 2]) / tf.reduce_sum(fov, axis=[1, 2])
        )
        task = tf.reduce_mean(tf.square(y[:, 0] - grades))
        kernels = [v for v in model.trainable_variables if v.name == "kernel"]
        loss = task + weight * penalty + l2 * tf.add_n([tf.reduce_sum(k**2) for k in kernels])
    return loss, outer.gradient(loss, model.trainable_variables)


@pytest.mark.parametrize("seed_scale", [1.0, mixed_precision.HEATMAP_SEED_SCALE])
def test_weight_gradients_equal_nested_tapes(seed_scale):
    """Double back-propagation through the engine equals autodiff of the tape heatmap."""
    model = _tiny_model()
    wrapper = HeatmapAwareModel(model, heatmap_weight=50.0, l2=1e-3, seed_scale=seed_scale)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.01))
    images, grades = _fundus_batch()
    terms, grads = wrapper.gradients(tf.constant(images), tf.constant(grades), training=False)
    expected_loss, expected = _nested_tape_gradients(model, images, grades, 50.0, 1e-3)
    assert float(terms["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)
    assert float(terms["heatmap_penalty"]) > 0
    for got, want, variable in zip(grads, expected, model.trainable_variables, strict=True):
        scale = float(tf.reduce_max(tf.abs(want))) + 1e-12
        np.testing.assert_allclose(
            got.numpy() / scale, want.numpy() / scale, atol=1e-4, err_msg=variable.path
        )


def test_zero_weight_is_the_plain_step():
    """With lambda = 0 the loss is MSE + L2 and no heatmap is computed."""
    model = _tiny_model()
    wrapper = HeatmapAwareModel(model, heatmap_weight=0.0, l2=1e-3)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.01))
    images, grades = _fundus_batch()
    terms, grads = wrapper.gradients(tf.constant(images), tf.constant(grades), training=False)
    expected_loss, expected = _nested_tape_gradients(model, images, grades, 0.0, 1e-3)
    assert float(terms["heatmap_penalty"]) == 0.0
    assert float(terms["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)
    for got, want in zip(grads, expected, strict=True):
        np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-7)


def test_fit_and_evaluate_report_the_same_metrics():
    """One fit epoch updates the weights; train and validation logs have every metric."""
    model = _tiny_model()
    wrapper = HeatmapAwareModel(model, heatmap_weight=1.0, l2=5e-4)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.001, momentum=0.9, nesterov=True))
    images, grades = _fundus_batch()
    before = [v.numpy().copy() for v in model.trainable_variables]
    history = wrapper.fit(
        images, grades, validation_data=(images, grades), batch_size=3, epochs=1, verbose=0
    )
    names = ("loss", "task_loss", "heatmap_penalty", "mae", "referable_auc")
    for name in names:
        assert np.isfinite(history.history[name][0])
        assert np.isfinite(history.history[f"val_{name}"][0])
    assert any(
        not np.array_equal(b, v.numpy())
        for b, v in zip(before, model.trainable_variables, strict=True)
    )


def test_mixed_float16_step_is_finite():
    """Under mixed_float16 with both loss scalings, a step runs and stays finite."""
    try:
        policy = mixed_precision.set_precision("mixed_float16")
        model = _tiny_model()
        wrapper = HeatmapAwareModel(
            model, heatmap_weight=1.0, seed_scale=mixed_precision.heatmap_seed_scale(policy)
        )
        optimizer = mixed_precision.wrap_optimizer(keras.optimizers.SGD(0.001), policy)
        assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
        wrapper.compile(optimizer=optimizer)
        images, grades = _fundus_batch()
        logs = wrapper.train_on_batch(images, grades, return_dict=True)
        assert all(np.isfinite(value) for value in logs.values())
        assert logs["heatmap_penalty"] > 0
    finally:
        keras.config.set_dtype_policy("float32")
