"""CPU time of each convolution adjoint formulation, per convolution of a drscreen network.

    python bench/conv_adjoint.py [--model=oO_netA --image_size=448 --batch_size=8]

For every strided convolution of the model and the first unit-stride one, times three
formulations of its input gradient (the heatmap's backward step), alone and together with
their own gradient (what heatmap-aware training adds), on random signals of the layer's
shapes, each compiled with `tf.function`, one warm-up call excluded, in alternating rounds:
1. ``fused``: TensorFlow's ``Conv2DBackpropInput`` (``tf.nn.conv2d_transpose``), differentiated
   by TensorFlow;
2. ``phases``: the portable phase convolution (what the exports hold), differentiated by
   TensorFlow;
3. ``in-process``: what `drscreen.layers.convolution.conv_input_gradient` builds outside
   `drscreen.layers.portable()` (the fused adjoint, or onto at most ``FEW_CHANNELS`` channels
   with a stride the phases with the fused gradient).
Prints the medians of the process CPU time (ms) and the largest difference from ``fused``.
Runtime: ~1 min for the small net, ~3 min for net A on 2 CPU cores.
"""

import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen import layers  # noqa: E402
from drscreen.layers.convolution import conv_input_gradient  # noqa: E402
from drscreen.models import build  # noqa: E402
from drscreen.models.zoo import MODELS  # noqa: E402

flags.DEFINE_enum("model", "oO_netA", sorted(MODELS), "drscreen.models.build name.")
flags.DEFINE_integer("image_size", 448, "Input size.")
flags.DEFINE_integer("batch_size", 8, "Batch size.")
flags.DEFINE_integer("repeats", 7, "Rounds (median reported).")
flags.DEFINE_integer("calls", 5, "Timed calls per round.")
FLAGS = flags.FLAGS


def timed_convolutions(model) -> list:
    """The strided convolutions and the first unit-stride one."""
    convolutions = [layer for layer in model.layers if isinstance(layer, layers.Conv2D)]
    strided = [layer for layer in convolutions if layer.strides != (1, 1)]
    unit = [layer for layer in convolutions if layer.strides == (1, 1)][:1]
    return sorted(strided + unit, key=convolutions.index)


def formulations(layer) -> dict:
    """name -> function(upstream, kernel) of the layer's input gradient."""
    height, width = layer.input.shape[1:3]
    channels = layer.input.shape[3]

    def fused(upstream, kernel):
        shape = tf.stack([tf.shape(upstream)[0], height, width, channels])
        return tf.nn.conv2d_transpose(upstream, kernel, shape, layer.strides, layer.padding.upper())

    def phases(upstream, kernel):
        with layers.portable():
            return conv_input_gradient(
                upstream, kernel, (height, width), layer.strides, layer.padding
            )

    def in_process(upstream, kernel):
        return conv_input_gradient(upstream, kernel, (height, width), layer.strides, layer.padding)

    return {"fused": fused, "phases": phases, "in-process": in_process}


def with_gradient(adjoint, weights):
    """The adjoint and the gradient of a loss on it w.r.t. upstream and kernel."""

    def run(upstream, kernel):
        with tf.GradientTape() as tape:
            tape.watch([upstream, kernel])
            loss = tf.reduce_sum(tf.square(adjoint(upstream, kernel)) * weights)
        return tape.gradient(loss, [upstream, kernel])

    return run


def cpu_ms(function, *args) -> float:
    start = time.process_time()
    for _ in range(FLAGS.calls):
        tf.nest.map_structure(lambda t: t.numpy(), function(*args))
    return (time.process_time() - start) / FLAGS.calls * 1e3


def main(argv: list[str]) -> None:
    del argv
    model = build(FLAGS.model, input_size=FLAGS.image_size)
    print(f"{FLAGS.model} {FLAGS.image_size}px, batch {FLAGS.batch_size}, CPU ms (median)")
    for layer in timed_convolutions(model):
        upstream = tf.random.stateless_normal(
            (FLAGS.batch_size, *layer.output.shape[1:]), seed=(0, 1)
        )
        kernel = tf.convert_to_tensor(layer.kernel)
        weights = tf.random.stateless_normal((FLAGS.batch_size, *layer.input.shape[1:]), (2, 3))
        functions = {
            (name, part): tf.function(f if part == "adjoint" else with_gradient(f, weights))
            for name, f in formulations(layer).items()
            for part in ("adjoint", "with gradient")
        }
        reference = functions["fused", "adjoint"](upstream, kernel)
        for function in functions.values():
            function(upstream, kernel)
        times = {key: [] for key in functions}
        for _ in range(FLAGS.repeats):
            for key, function in functions.items():
                times[key].append(cpu_ms(function, upstream, kernel))
        shape = f"{layer.kernel_size[0]}x{layer.kernel_size[1]}/{layer.strides[0]}"
        print(
            f"  {layer.name} {shape} {tuple(layer.input.shape[1:])} <- "
            f"{tuple(layer.output.shape[1:])}:"
        )
        for name in ("fused", "phases", "in-process"):
            difference = float(
                tf.reduce_max(tf.abs(functions[name, "adjoint"](upstream, kernel) - reference))
            )
            print(
                f"    {name:10s} adjoint {statistics.median(times[name, 'adjoint']):7.1f}  "
                f"with its gradient {statistics.median(times[name, 'with gradient']):7.1f}  "
                f"(max |diff| {difference:.1e})"
            )


if __name__ == "__main__":
    app.run(main)
