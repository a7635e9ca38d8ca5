"""Score + backward chains containing every layer type export to TFLite built-ins and ONNX.

The converted models run (ai_edge_litert, onnxruntime) and match TensorFlow, with an
unknown batch size, for the gradient, guided and LRP-epsilon rules, also through nested skip
connections (a U-Net chain). The chains are traced inside
`drscreen.layers.portable()`, as drscreen's export traces its signatures.
"""

import keras
import numpy as np
import onnx
import onnxruntime
import pytest
import tensorflow as tf
import tf2onnx
from ai_edge_litert.interpreter import Interpreter

from drscreen import layers
from drscreen.heatmaps.backprop import backward, forward
from tests.layers.battery import assert_close

SHAPE = (16, 16, 3)


def _chain_with_flat_head() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            layers.InputNormalization(),
            layers.Conv2D(4, 3, untied_bias=True),
            layers.LeakyReLU(),
            layers.MaxPooling2D(3, 2),
            layers.BatchNormalization(),
            layers.Conv2D(4, 4, strides=2),
            layers.LeakyReLU(0.0),
            layers.AveragePooling2D(2, 1),
            layers.RMSPooling2D(2, 1),
            layers.GlobalAveragePooling2D(),
            layers.Flatten(),
            layers.Dropout(0.5),
            layers.Dense(6),
            layers.Maxout(2),
            layers.Dense(1),
            layers.Sigmoid(),
        ]
    )


def _chain_with_global_max() -> keras.Sequential:
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            layers.GrahamNormalization(0.2),
            layers.InputNormalization((128.0,) * 3, (64.0,) * 3),
            layers.Conv2D(4, 5, strides=2, padding="valid"),
            layers.LeakyReLU(),
            layers.MaxPooling2D(3, 2, padding="same"),
            layers.GlobalMaxPooling2D(),
            layers.Dense(1),
        ]
    )


def _unet() -> keras.Sequential:
    """Two nested skips (`SkipConcat`, `UpSampling2D`) and the evidence head."""
    return keras.Sequential(
        [
            keras.Input(SHAPE),
            layers.InputNormalization(),
            layers.SkipConcat(
                [
                    layers.Conv2D(4, 3, strides=2),
                    layers.LeakyReLU(),
                    layers.SkipConcat(
                        [
                            layers.MaxPooling2D(3, 2, padding="same"),
                            layers.Conv2D(6, 3),
                            layers.LeakyReLU(0.0),
                            layers.UpSampling2D(),
                        ]
                    ),
                    layers.Conv2D(4, 3),
                    layers.LeakyReLU(),
                    layers.UpSampling2D(),
                ]
            ),
            layers.Conv2D(1, 1),
            layers.SquaredReLU(),
            layers.GlobalAveragePooling2D(),
            layers.Dense(1, use_bias=False),
        ]
    )


CHAINS = {
    "flat_head": _chain_with_flat_head,
    "global_max": _chain_with_global_max,
    "unet": _unet,
}


def _score_and_heatmaps(model: keras.Model) -> tf.types.experimental.ConcreteFunction:
    @tf.function(input_signature=[tf.TensorSpec((None, *SHAPE), tf.float32, name="images")])
    def score_and_heatmaps(images):
        output, trace = forward(model, images)
        seed = tf.ones_like(output)
        return {
            "score": output,
            "gradient": backward(trace, seed),
            "guided": backward(trace, seed, layers.GUIDED),
            "lrp": backward(trace, seed, layers.lrp_epsilon(0.01)),
        }

    with layers.portable():
        return score_and_heatmaps.get_concrete_function()


def _images() -> np.ndarray:
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, size=(3, *SHAPE)).astype("float32")
    images[:, :5, :5, :] = 0.0  # a black corner: ties in every pooling window there
    return images


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_tflite_builtins_only(chain):
    """The score + heatmaps function converts with TFLITE_BUILTINS only and matches TF."""
    model = CHAINS[chain]()
    function = _score_and_heatmaps(model)
    # The converter freezes variables it finds on the trackable; a Keras 3 model does not
    # expose its tf.Variables there (they would stay uninitialised READ_VARIABLE ops).
    holder = tf.Module()
    holder.variables_to_freeze = [variable.value for variable in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    interpreter = Interpreter(model_content=converter.convert())
    runner = interpreter.get_signature_runner()
    images = _images()
    got = runner(images=images)
    expected = function(tf.constant(images))
    for name, value in expected.items():
        assert_close(got[name], value.numpy(), rtol=1e-4)


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_onnx_runs_and_matches(chain):
    """tf2onnx converts every op to standard ONNX, and onnxruntime matches TF."""
    model = CHAINS[chain]()
    function = _score_and_heatmaps(model)
    spec = (tf.TensorSpec((None, *SHAPE), tf.float32, name="images"),)
    proto, _ = tf2onnx.convert.from_function(
        tf.function(lambda images: function(images)), input_signature=spec, opset=17
    )
    unknown = {node.op_type for node in proto.graph.node if not onnx.defs.has(node.op_type)}
    assert not unknown, f"ops ONNX does not define: {unknown}"
    session = onnxruntime.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    images = _images()
    got = dict(
        zip(
            [output.name for output in session.get_outputs()],
            session.run(None, {session.get_inputs()[0].name: images}),
            strict=True,
        )
    )
    expected = function(tf.constant(images))
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert_close(got[name], value.numpy(), rtol=1e-4)
