"""A U-Net chain (nested `SkipConcat`, `UpSampling2D`) exports its score and backward passes.

Traced inside `drscreen.layers.portable()`, the score, gradient, guided and LRP-epsilon maps
convert with TFLite built-ins only and to standard ONNX; LiteRT (XNNPACK delegate) and ONNX
Runtime match TensorFlow with an unknown batch size.
"""

import keras
import numpy as np
import onnx
import onnxruntime
import tensorflow as tf
import tf2onnx
from ai_edge_litert.interpreter import Interpreter

from drscreen import layers
from drscreen.heatmaps.backprop import backward, forward
from tests.layers.battery import assert_close

SHAPE = (16, 16, 3)


def _unet() -> keras.Sequential:
    keras.utils.set_random_seed(11)
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


def _function(model: keras.Model) -> tf.types.experimental.ConcreteFunction:
    @tf.function(input_signature=[tf.TensorSpec((None, *SHAPE), tf.float32, name="images")])
    def score_and_maps(images):
        output, trace = forward(model, images)
        seed = tf.ones_like(output)
        return {
            "score": output,
            "gradient": backward(trace, seed),
            "guided": backward(trace, seed, layers.GUIDED),
            "lrp": backward(trace, seed, layers.lrp_epsilon(0.01)),
        }

    with layers.portable():
        return score_and_maps.get_concrete_function()


def _images() -> np.ndarray:
    images = np.random.default_rng(0).uniform(0, 255, size=(3, *SHAPE)).astype("float32")
    images[:, :6, :6, :] = 0.0  # black corner: pooling ties
    return images


def test_unet_chain_converts_to_tflite_builtins_and_matches():
    """TFLITE_BUILTINS only; LiteRT's outputs equal TensorFlow's."""
    model = _unet()
    function = _function(model)
    holder = tf.Module()
    holder.variables_to_freeze = [variable.value for variable in model.variables]
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], holder)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    runner = Interpreter(model_content=converter.convert()).get_signature_runner()
    images = _images()
    got = runner(images=images)
    for name, value in function(tf.constant(images)).items():
        assert_close(got[name], value.numpy(), rtol=1e-4)


def test_unet_chain_converts_to_onnx_and_matches():
    """Standard ONNX ops only; ONNX Runtime's outputs equal TensorFlow's."""
    model = _unet()  # held: the function refers to its variables weakly
    function = _function(model)
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
    names = [output.name for output in session.get_outputs()]
    got = dict(zip(names, session.run(None, {"images": images}), strict=True))
    expected = function(tf.constant(images))
    assert sorted(got) == sorted(expected)
    for name, value in expected.items():
        assert_close(got[name], value.numpy(), rtol=1e-4)
