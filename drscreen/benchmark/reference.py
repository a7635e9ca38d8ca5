"""The pixel-supervised reference: a segmentation network trained on the lesion masks.

It is the ceiling the image-supervised heatmaps are measured against (and the kind of detector
Quellec et al. 2017 claim to beat): `drscreen.models.segmentation.segmentation_net` with one
sigmoid map per lesion group (red, bright), trained on the masks of a split with flips and
quarter turns applied to image and masks together (`ReferenceConfig` says which width, depth,
loss, augmentation and length; `drscreen.benchmark.tuning` chooses them on validation masks).
Its all-lesion map is the pixel-wise maximum of the two group maps: the probability that the
pixel belongs to the likelier group, so a peak of either group is a peak of the all-lesion map.
It is a baseline, never exported nor explained, so it is plain Keras; its maps are scored by
exactly the candidate, matching and FROC code of the heatmaps (`drscreen.evaluation.runner`).
"""

import dataclasses

import keras
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.lesions import BRIGHT_LESIONS, LESION_TYPES, RED_LESIONS
from drscreen.data.sources import Source
from drscreen.evaluation.runner import HeatmapFunction
from drscreen.models.segmentation import segmentation_net

GROUPS = {"red_lesions": RED_LESIONS, "bright_lesions": BRIGHT_LESIONS}
"""Output channels of the reference, in order: the lesion types each one detects."""
ALL_LESIONS = "all_lesions"
"""The name of the reference's all-lesion map (the maximum of the group maps)."""
LOSSES = ("focal", "dice_bce")


@dataclasses.dataclass(frozen=True)
class ReferenceConfig:
    """How a reference is built and trained.

    Attributes
    ----------
    width, depth:
        `segmentation_net`'s stem filters and pooled stages.
    epochs:
        Passes over the training split.
    loss:
        ``"focal"``: class-balanced binary focal cross-entropy (alpha 0.75, gamma 2);
        ``"dice_bce"``: binary cross-entropy plus the soft Dice loss of each group map.
    augmentation:
        Random flips and quarter turns of image and masks together.
    batch_size, learning_rate:
        Adam's batches and step size.
    """

    width: int = 16
    depth: int = 2
    epochs: int = 10
    loss: str = "focal"
    augmentation: bool = True
    batch_size: int = 16
    learning_rate: float = 1e-3

    def __post_init__(self):
        if min(self.width, self.depth, self.epochs, self.batch_size) < 1:
            raise ValueError(f"reference width, depth, epochs and batch size must be >= 1: {self}")
        if self.loss not in LOSSES:
            raise ValueError(f"reference loss {self.loss!r} is not one of {LOSSES}")
        if not self.learning_rate > 0:
            raise ValueError(f"reference learning rate must be > 0, got {self.learning_rate}")

    @property
    def label(self) -> str:
        """A short name for tables: ``w16 d2 focal aug``."""
        augmentation = "aug" if self.augmentation else "no aug"
        return f"w{self.width} d{self.depth} {self.loss} {augmentation}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    train: Source, size: int, batch_size: int, seed: int, augmentation: bool = True
) -> tuple[tf.data.Dataset, int]:
    """Endless shuffled (image, group targets) batches of a split, decoded once, augmented
    when asked, and the batches in one pass."""
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
    pairs = pairs.shuffle(count, seed=seed)
    if augmentation:
        pairs = pairs.map(_dihedral, num_parallel_calls=tf.data.AUTOTUNE)
    batches = pairs.batch(batch_size, drop_remainder=True).repeat().prefetch(tf.data.AUTOTUNE)
    return batches, count // batch_size


def dice_bce_loss(targets: tf.Tensor, maps: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy plus the mean over group maps of the soft Dice loss
    ``1 - (2 Σ t·p + 1) / (Σ t + Σ p + 1)`` (sums over the batch and pixels)."""
    bce = keras.losses.binary_crossentropy(targets, maps)
    overlap = tf.reduce_sum(targets * maps, axis=[0, 1, 2])
    total = tf.reduce_sum(targets, axis=[0, 1, 2]) + tf.reduce_sum(maps, axis=[0, 1, 2])
    dice = 1.0 - (2.0 * overlap + 1.0) / (total + 1.0)
    return tf.reduce_mean(bce) + tf.reduce_mean(dice)


def _loss(name: str):
    if name == "focal":
        return keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75)
    return dice_bce_loss


class ReferenceTraining:
    """A reference being trained on one split, epoch block by epoch block.

    ``ReferenceTraining(train, size, config, seed).train_to(e)`` trains until ``e`` epochs
    have run in all (the tuning study measures the model between blocks); the model is
    `model`. Each block is one ``fit``, which starts a new pass over the shuffled data, so the
    blocks are part of the schedule (`train_reference` takes them).
    """

    def __init__(self, train: Source, size: int, config: ReferenceConfig, seed: int):
        keras.utils.set_random_seed(seed)
        self.config = config
        self.model = reference_net(size, config.width, config.depth)
        self.model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate), loss=_loss(config.loss)
        )
        self._batches, self._steps = training_pairs(
            train, size, config.batch_size, seed, config.augmentation
        )
        self.epochs = 0

    def train_to(self, epochs: int, verbose: int = 2) -> keras.Model:
        """Train until ``epochs`` epochs in all (no-op when already there)."""
        if epochs > self.epochs:
            self.model.fit(
                self._batches,
                initial_epoch=self.epochs,
                epochs=epochs,
                steps_per_epoch=self._steps,
                shuffle=False,
                verbose=verbose,
            )
            self.epochs = epochs
        return self.model


def train_reference(
    train: Source,
    size: int,
    config: ReferenceConfig,
    seed: int,
    blocks: tuple[int, ...] = (),
    verbose: int = 2,
) -> keras.Model:
    """Train a reference on a split's lesion masks for ``config.epochs`` epochs, in the
    epoch ``blocks`` below that (each block is one ``fit``, as the tuning study trains)."""
    training = ReferenceTraining(train, size, config, seed)
    for epochs in [block for block in blocks if block < config.epochs]:
        training.train_to(epochs, verbose)
    return training.train_to(config.epochs, verbose)


def score_function(model: keras.Model):
    """The largest lesion probability of each image (the reference grades nothing; this only
    fills the runner's score slot)."""

    @tf.function(reduce_retracing=True)
    def scores(images: tf.Tensor) -> tf.Tensor:
        return tf.reduce_max(model(images, training=False), axis=[1, 2, 3])

    return scores


def heatmap_functions(model: keras.Model, prefix: str = "reference") -> dict[str, HeatmapFunction]:
    """One map producer per lesion group and one for all lesions (``reference_red_lesions``,
    ``reference_bright_lesions``, ``reference_all_lesions``), in the runner's ``(images,
    fov_masks) -> (grades, heatmaps)`` form; the grade is the map's maximum (the reference
    grades nothing: it is never scored as a screening model)."""

    def producer(select) -> HeatmapFunction:
        @tf.function(reduce_retracing=True)
        def maps(images: tf.Tensor, fov_masks: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            heatmap = select(model(images, training=False)) * fov_masks
            return tf.reduce_max(heatmap, axis=[1, 2]), heatmap

        return maps

    functions = {
        f"{prefix}_{group}": producer(lambda maps, i=index: maps[..., i])
        for index, group in enumerate(GROUPS)
    }
    functions[f"{prefix}_{ALL_LESIONS}"] = producer(lambda maps: tf.reduce_max(maps, axis=-1))
    return functions
