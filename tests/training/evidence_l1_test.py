"""The evidence networks' L1 sparsity term in training: the loss and its weight gradients
against a tape of the term written out, the checks of its flag, and the model left as built."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen.models import build
from drscreen.training.config import ModelConfig, TrainConfig
from drscreen.training.heatmap_aware import HeatmapAwareModel

SIZE = 32


def _batch() -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (3, SIZE, SIZE, 3)).astype("float32")
    return tf.constant(images), tf.constant([0.0, 2.0, 4.0])


@pytest.mark.parametrize("name", ["evidence", "unet_evidence"])
def test_loss_and_gradients_equal_the_term_written_out(name):
    """loss = MSE + l1 · sqrt(|k|) · mean(relu(e)) + l2 · Σ kernel², e from the layers up to
    ``evidence`` called by Keras; the step's weight gradients equal the tape's."""
    keras.utils.set_random_seed(2)
    model = build(name, input_size=SIZE, width=4)
    model.get_layer("grade").kernel.assign([[2.25]])
    wrapper = HeatmapAwareModel(model, l2=1e-3, evidence_l1=0.7)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.01))
    images, grades = _batch()
    names = [layer.name for layer in model.layers]
    below = keras.Sequential(model.layers[: names.index("evidence") + 1])
    with tf.GradientTape() as tape:
        evidence = below(images)
        amplitude = tf.sqrt(model.get_layer("grade").kernel[0, 0])  # sqrt(2.25) = 1.5
        term = amplitude * tf.reduce_mean(tf.nn.relu(evidence))
        task = tf.reduce_mean(tf.square(model(images)[:, 0] - grades))
        kernels = [v for v in model.trainable_variables if v.name == "kernel"]
        decay = tf.add_n([tf.reduce_sum(tf.square(k)) for k in kernels])
        expected_loss = task + 0.7 * term + 1e-3 * decay
    expected = tape.gradient(expected_loss, model.trainable_variables)
    terms, grads = wrapper.gradients(images, grades, training=False)
    assert float(amplitude) == 1.5 and float(term) > 0.01
    assert float(terms["loss"]) == pytest.approx(float(expected_loss), rel=1e-5)
    for got, want, variable in zip(grads, expected, model.trainable_variables, strict=True):
        scale = float(tf.reduce_max(tf.abs(want))) + 1e-12
        np.testing.assert_allclose(
            got.numpy() / scale, want.numpy() / scale, atol=1e-5, err_msg=variable.path
        )


def test_training_with_the_term_leaves_the_model_as_built():
    """The term lives in the wrapper: the plain model has no loss of its own and the same
    config as a freshly built one, so best.keras and every export are the same network."""
    model = build("unet_evidence", input_size=SIZE, width=4)
    wrapper = HeatmapAwareModel(model, evidence_l1=1.0)
    wrapper.compile(optimizer=keras.optimizers.SGD(0.01))
    wrapper.train_on_batch(*_batch())
    assert not model.losses
    fresh = build("unet_evidence", input_size=SIZE, width=4)
    assert json.dumps(model.get_config(), sort_keys=True) == json.dumps(
        fresh.get_config(), sort_keys=True
    )


def test_a_model_without_an_evidence_head_is_refused():
    """evidence_l1 > 0 on the small network names the missing layers."""
    with pytest.raises(ValueError, match="evidence_l1 needs a model with layers 'evidence'"):
        HeatmapAwareModel(build("small", input_size=64, width=4), evidence_l1=0.1)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ModelConfig(model="unet_evidence", evidence_l1=-1.0), "must be >= 0"),
        (
            lambda: ModelConfig(model="small", evidence_l1=0.1),
            "--evidence_l1 needs a network with an evidence map .*--model=small has none",
        ),
    ],
)
def test_bad_flag_values_are_refused(make, message):
    """A negative weight, or a weight for a network without an evidence map, names the flag."""
    with pytest.raises(ValueError, match=message):
        make()


def test_a_run_begun_before_the_setting_existed_resumes(tmp_path):
    """A config.json without ``evidence_l1`` ran with the default: resuming with the default is
    the same run, with another weight it is not."""
    path = TrainConfig(model_dir=str(tmp_path), model=ModelConfig(model="evidence")).write(
        tmp_path / "config.json"
    )
    older = json.loads(path.read_text())
    del older["model"]["evidence_l1"]
    path.write_text(json.dumps(older))
    TrainConfig(model_dir=str(tmp_path), model=ModelConfig(model="evidence")).check_continues(path)
    weighted = ModelConfig(model="evidence", evidence_l1=0.1)
    with pytest.raises(ValueError, match=r"other settings \(model.evidence_l1\)"):
        TrainConfig(model_dir=str(tmp_path), model=weighted).check_continues(path)
