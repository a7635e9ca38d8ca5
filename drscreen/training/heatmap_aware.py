"""Heatmap-aware training: a Keras model whose step back-propagates through the heatmap.

`HeatmapAwareModel` wraps a plain drscreen model (a chain of `drscreen.layers`) and trains it
with the objective

    loss = MSE(grade, ŷ) + λ · penalty(H ⊙ FOV) + l1 · sparsity(evidence) + l2 · Σ kernel²

where H = Σ_c |∂ŷ/∂I| is the sensitivity heatmap, computed *inside* the gradient tape by the
engine (`drscreen.heatmaps.backprop.forward` storing the trace, `backward` to the pixels), so
the gradient of the loss with respect to the weights flows through the forward pass and
through the backward pass (double back-propagation, Quellec et al. 2017). With λ = 0 the
step is the plain o_O step (no heatmap is computed). For the evidence networks, ``l1``
weighs `drscreen.models.evidence.evidence_sparsity` of the evidence layer's output, read off
the same forward pass.

The L2 term is coupled (added to the loss, as o_O's Lasagne code did) and covers the
variables named ``kernel`` (convolution and dense weights), not biases. The loss is divided by
the number of replicas in sync so that the cross-replica gradient sum is the gradient of the
global-batch mean. The plain model is `model.model`: save that one, not the wrapper.
"""

import keras
import tensorflow as tf

from drscreen.data.fundus import field_of_view_mask
from drscreen.data.lesions import REFERABLE_GRADE
from drscreen.heatmaps import backprop
from drscreen.models.evidence import EVIDENCE_LAYER, GRADE_LAYER, evidence_sparsity
from drscreen.training.penalties import get_penalty


class HeatmapAwareModel(keras.Model):
    """Train `model` on grade regression plus a penalty on its input-gradient heatmaps.

    Parameters
    ----------
    model:
        The plain model: images (N, S, S, 3) in [0, 255] → grade (N, 1).
    heatmap_weight:
        λ, the weight of the heatmap penalty; 0 skips the heatmap.
    penalty:
        Name of a penalty of `drscreen.training.penalties`.
    l2:
        Coefficient of the sum of squared kernels added to the loss.
    evidence_l1:
        Weight of the evidence sparsity term; > 0 needs a model with the evidence head
        (`drscreen.models.evidence.evidence_head`).
    seed_scale:
        Factor on the seed of the inner backward pass, undone on the float32 heatmap
        (`drscreen.training.mixed_precision.heatmap_seed_scale`).
    """

    def __init__(
        self,
        model: keras.Model,
        heatmap_weight: float = 0.0,
        penalty: str = "sparsity",
        l2: float = 0.0,
        seed_scale: float = 1.0,
        evidence_l1: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if evidence_l1 > 0:
            names = {layer.name for layer in model.layers}
            if not {EVIDENCE_LAYER, GRADE_LAYER} <= names:
                raise ValueError(
                    f"evidence_l1 needs a model with layers {EVIDENCE_LAYER!r} and "
                    f"{GRADE_LAYER!r} (the evidence head); {model.name!r} has none"
                )
        self.model = model
        self.heatmap_weight = heatmap_weight
        self.penalty = penalty
        self.l2 = l2
        self.seed_scale = seed_scale
        self.evidence_l1 = evidence_l1
        self._penalty_fn = get_penalty(penalty)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.task_loss_tracker = keras.metrics.Mean(name="task_loss")
        self.penalty_tracker = keras.metrics.Mean(name="heatmap_penalty")
        self.mae = keras.metrics.MeanAbsoluteError(name="mae")
        self.referable_auc = keras.metrics.AUC(name="referable_auc", num_thresholds=400)

    @property
    def metrics(self) -> list[keras.metrics.Metric]:
        return [
            self.loss_tracker,
            self.task_loss_tracker,
            self.penalty_tracker,
            self.mae,
            self.referable_auc,
        ]

    def call(self, inputs: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.model(inputs, training=training)

    def build_for_training(self, image_size: int) -> None:
        """Create every variable (model, optimizer) before `fit`, inside the strategy scope.

        Keras' own lazy build reduces the first distributed batch eagerly, which fails under
        `MultiWorkerMirroredStrategy` (Keras 3.15); once built, `_maybe_symbolic_build` is
        skipped.
        """
        self(tf.zeros((1, image_size, image_size, 3)))
        self.optimizer.build(self.trainable_variables)
        self._built_for_training = True

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        if not getattr(self, "_built_for_training", False):
            super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def heatmaps(self, images: tf.Tensor, training: bool) -> tuple[tf.Tensor, tf.Tensor]:
        """(grade predictions (N,) float32, float32 heatmaps Σ_c |∂ŷ/∂I| (N, H, W))."""
        outputs, trace = backprop.forward(self.model, images, training=training)
        return tf.cast(outputs[:, 0], tf.float32), self._heatmaps(outputs, trace, training)

    def _heatmaps(self, outputs: tf.Tensor, trace: backprop.Trace, training: bool) -> tf.Tensor:
        seed = tf.ones_like(outputs) * tf.cast(self.seed_scale, outputs.dtype)
        gradient = backprop.backward(trace, seed, training=training)
        heatmaps = tf.reduce_sum(tf.abs(tf.cast(gradient, tf.float32)), axis=-1)
        return heatmaps / self.seed_scale

    def objective(self, images: tf.Tensor, grades: tf.Tensor, training: bool) -> dict:
        """The loss and its terms for one batch (differentiable w.r.t. the weights)."""
        grades = tf.cast(tf.reshape(grades, [-1]), tf.float32)
        if self.heatmap_weight > 0 or self.evidence_l1 > 0:
            outputs, trace = backprop.forward(self.model, images, training=training)
        else:
            outputs, trace = self.model(images, training=training), None
        predictions = tf.cast(outputs[:, 0], tf.float32)
        penalty = tf.constant(0.0)
        if self.heatmap_weight > 0:
            heatmaps = self._heatmaps(outputs, trace, training)
            fov = tf.stop_gradient(tf.cast(field_of_view_mask(images), tf.float32))
            penalty = self._penalty_fn(heatmaps, tf.reshape(fov, tf.shape(heatmaps)))
        sparsity = tf.constant(0.0)
        if self.evidence_l1 > 0:
            grade_kernel = self.model.get_layer(GRADE_LAYER).kernel
            sparsity = evidence_sparsity(trace.output_of(EVIDENCE_LAYER), grade_kernel)
        task_loss = tf.reduce_mean(tf.square(predictions - grades))
        kernels = [v for v in self.model.trainable_variables if v.name == "kernel"]
        weight_decay = tf.add_n([tf.reduce_sum(tf.square(tf.cast(k, tf.float32))) for k in kernels])
        loss = (
            task_loss
            + self.heatmap_weight * penalty
            + self.evidence_l1 * sparsity
            + self.l2 * weight_decay
        )
        return {
            "loss": loss,
            "task_loss": task_loss,
            "heatmap_penalty": penalty,
            "predictions": predictions,
        }

    def gradients(
        self, images: tf.Tensor, grades: tf.Tensor, training: bool = True
    ) -> tuple[dict, list[tf.Tensor]]:
        """(objective terms, gradients of the loss w.r.t. `trainable_variables`).

        The returned gradients are still multiplied by the optimizer's loss scale.
        """
        with tf.GradientTape() as tape:
            terms = self.objective(images, grades, training=training)
            replicas = tf.distribute.get_strategy().num_replicas_in_sync
            scaled_loss = self.optimizer.scale_loss(terms["loss"] / replicas)
        return terms, tape.gradient(scaled_loss, self.trainable_variables)

    def train_step(self, data) -> dict:
        images, grades = data[0], data[1]
        terms, grads = self.gradients(images, grades, training=True)
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_metrics(terms, grades)

    def test_step(self, data) -> dict:
        images, grades = data[0], data[1]
        return self._update_metrics(self.objective(images, grades, training=False), grades)

    def _update_metrics(self, terms: dict, grades: tf.Tensor) -> dict:
        grades = tf.cast(tf.reshape(grades, [-1]), tf.float32)
        self.loss_tracker.update_state(terms["loss"])
        self.task_loss_tracker.update_state(terms["task_loss"])
        self.penalty_tracker.update_state(terms["heatmap_penalty"])
        self.mae.update_state(grades, terms["predictions"])
        referable = tf.cast(grades >= REFERABLE_GRADE, tf.float32)
        score = tf.sigmoid(terms["predictions"] - (REFERABLE_GRADE - 0.5))
        self.referable_auc.update_state(referable, score)
        results = {metric.name: metric.result() for metric in self.metrics}
        if isinstance(tf.distribute.get_strategy(), tf.distribute.MultiWorkerMirroredStrategy):
            # Keras 3.15 reduces step outputs across workers with MEAN over axis 0, which
            # fails on scalars: give each result one axis (the mean of equal values is exact).
            results = {name: tf.reshape(value, [1]) for name, value in results.items()}
        return results
