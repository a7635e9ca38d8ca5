"""The pixel-supervised reference: a small segmentation network trained on the lesion masks.

It is the ceiling the image-supervised heatmaps are measured against (and the kind of detector
Quellec et al. 2017 claim to beat): a U-Net-like fully convolutional network (stride-2 stem,
two pooled stages, skip connections, ~0.1 M parameters at width 16: about the image models'
cost) with one sigmoid map per lesion group (red, bright), trained with class-balanced focal
loss on the training split's masks, with flips and quarter turns applied to image and masks
together. It is a baseline, never exported nor explained, so it is plain Keras; its maps are
scored by exactly the candidate, matching and FROC code of the heatmaps
(`drscreen.evaluation.runner`), one map per group.
"""

import keras
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.lesions import BRIGHT_LESIONS, LESION_TYPES, RED_LESIONS
from drscreen.data.sources import Source
from drscreen.evaluation.runner import HeatmapFunction
from drscreen.models.segmentation import segmentation_net

GROUPS = {"red_lesions": RED_LESIONS, "bright_lesions": BRIGHT_LESIONS}
"""Output channels of the reference, in order: the lesion types each one detects."""


def reference_net(size: int, width: int = 16, depth: int = 2) -> keras.Model:
    """The segmentation network: (N, size, size, 3) in [0, 255] -> (N, size, size, 2) in [0, 1]."""
    return segmentation_net(size, len(GROUPS), width, depth, name="reference")


def _group_targets(lesion_masks: tf.Tensor) -> tf.Tensor:
    """(B, S, S, T) masks of `LESION_TYPES` -> (B, S, S, 2) float union per group."""
    channels = [
        tf.reduce_max(
            tf.gather(lesion_masks, [LESION_TYPES.index(t) for t in types], axis=-1), axis=-1
        )
        for types in GROUPS.values()
    ]
    return tf.cast(tf.stack(channels, axis=-1), tf.float32)


def _dihedral(image: tf.Tensor, target: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The same random flip and quarter turn of an image and its target maps."""
    both = tf.image.random_flip_left_right(tf.concat([image, target], axis=-1))
    both = tf.image.rot90(both, tf.random.uniform([], 0, 4, tf.int32))
    return both[..., :3], both[..., 3:]


def training_pairs(
    train: Source, size: int, batch_size: int, seed: int
) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled, augmented (image, group targets) batches of the training split,
    decoded once, and the batches in one pass."""
    settings = pipeline.PipelineConfig(image_size=size, batch_size=batch_size, augment=None, seed=0)
    pairs = (
        pipeline.dataset_for_evaluation(train, settings, lesion_masks=True)
        .map(lambda batch: (batch["image"], _group_targets(batch["lesion_masks"])))
        .unbatch()
        .cache()
    )
    count = int(pairs.reduce(0, lambda n, _: n + 1))
    if count < batch_size:
        raise ValueError(f"the reference needs {batch_size} training images, the split has {count}")
    batches = (
        pairs.shuffle(count, seed=seed)
        .map(_dihedral, num_parallel_calls=tf.data.AUTOTUNE)
        .batch(batch_size, drop_remainder=True)
        .repeat()
        .prefetch(tf.data.AUTOTUNE)
    )
    return batches, count // batch_size


def train_reference(
    train: Source, size: int, width: int, epochs: int, seed: int, verbose: int = 2
) -> keras.Model:
    """Train `reference_net` on the training split's lesion masks (Adam 1e-3, focal loss)."""
    keras.utils.set_random_seed(seed)
    model = reference_net(size, width)
    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75),
    )
    batches, steps = training_pairs(train, size, 16, seed)
    model.fit(batches, epochs=epochs, steps_per_epoch=steps, shuffle=False, verbose=verbose)
    return model


def score_function(model: keras.Model):
    """The largest lesion probability of each image (the reference grades nothing; this only
    fills the runner's score slot)."""

    @tf.function(reduce_retracing=True)
    def scores(images: tf.Tensor) -> tf.Tensor:
        return tf.reduce_max(model(images, training=False), axis=[1, 2, 3])

    return scores


def heatmap_functions(model: keras.Model) -> dict[str, HeatmapFunction]:
    """One map producer per lesion group (``reference_red_lesions``, ...), in the runner's
    ``(images, fov_masks) -> (grades, heatmaps)`` form; the grade is the map's maximum (the
    reference grades nothing: it is never scored as a screening model)."""

    def channel(index: int) -> HeatmapFunction:
        @tf.function(reduce_retracing=True)
        def maps(images: tf.Tensor, fov_masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            heatmap = model(images, training=False)[..., index] * fov_masks
            return tf.reduce_max(heatmap, axis=[1, 2]), heatmap

        return maps

    return {f"reference_{group}": channel(index) for index, group in enumerate(GROUPS)}
