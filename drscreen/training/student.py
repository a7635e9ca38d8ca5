"""The lesion student: a segmentation network trained on pseudo-masks from an image-level map.

Self-training on pseudo-masks (AffinityNet, Ahn & Kwak, CVPR 2018, arXiv 1803.10464), with
what DR grading gives and natural images lack: every pixel of a grade-0 photograph is an
exact negative. The rule (`pseudo_masks`), stated before any run:

1. the teacher map T of each training image (the screening model's heatmap of
   `StudentConfig.student_teacher_method`), masked by the field of view (FOV) and smoothed
   inside it by a Gaussian of ``student_sigma`` px
   (`drscreen.evaluation.lesions.smooth_heatmap`);
2. over the grade-0 training images, each image's largest T inside its FOV; τ+ is the
   ``student_positive_quantile`` quantile of these maxima (a level healthy photographs
   almost never reach), τ- their ``student_negative_quantile`` quantile (numpy's linear
   interpolation);
3. a grade-0 image is background (target 0, weight 1) at every FOV pixel; an image of
   grade >= 1 is lesion (target 1) where T >= τ+, background where T < τ-, ignored (weight
   0) in between; pixels outside the FOV and ungraded images (grade < 0) are ignored.

`train_student` computes T once for the training split (its images cropped at the model's
input size exactly as evaluation crops them, held in memory: about 16·N·S² bytes, 0.6 GB
for 1,000 images at 192 px), draws the pseudo-masks, and trains
`drscreen.models.segmentation.segmentation_net` (one channel) with Adam on a class-balanced
weighted binary cross-entropy (the labelled pixels' weights scaled as scikit-learn's
``class_weight="balanced"``: each class carries half the labelled weight) under the same
random flip and quarter turn of image, target and weight (`drscreen.data.augment.DIHEDRAL`,
exact on pixels), then shifts its logit back to the pseudo-masks' lesion rate
(`adjust_to_prior`), so its output is a probability users can read at 0.5. A second round
trains a fresh student on pseudo-masks drawn by the same rule from the first student's
FOV-masked map. The student's output times the FOV is the lesion map
(`drscreen.models.lesion_map`). Must not define flags.
"""

import sys

import keras
import numpy as np
import tensorflow as tf

from drscreen.data import pipeline
from drscreen.data.augment import DIHEDRAL, augment_image
from drscreen.data.sources import Source
from drscreen.evaluation.lesions import smooth_heatmap
from drscreen.evaluation.runner import HeatmapFunction
from drscreen.models.lesion_map import lesion_map
from drscreen.models.segmentation import segmentation_net
from drscreen.training.config import StudentConfig

_TEACHER_BATCH = 16


def _log(message: str) -> None:
    print(f"drscreen.training: {message}", file=sys.stderr, flush=True)


def _check_arrays(teacher_maps, fov_masks, grades) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    maps = np.asarray(teacher_maps, np.float32)
    fov = np.asarray(fov_masks) > 0.5
    grades = np.asarray(grades)
    if maps.ndim != 3 or fov.shape != maps.shape or grades.shape != maps.shape[:1]:
        raise ValueError(
            f"pseudo_masks needs teacher maps (N, S, S), FOV masks of the same shape and N "
            f"grades; got {maps.shape}, {fov.shape} and {grades.shape}"
        )
    bad = ~np.isfinite(maps[fov])
    if bad.any():
        raise ValueError(f"the teacher maps hold {int(bad.sum())} non-finite values in the FOV")
    return maps, fov, grades


def _pseudo_masks(
    teacher_maps, fov_masks, grades, config: StudentConfig
) -> tuple[np.ndarray, np.ndarray, float, float]:
    """`pseudo_masks`, and the levels τ+ and τ- it used."""
    maps, fov, grades = _check_arrays(teacher_maps, fov_masks, grades)
    smoothed = np.stack(
        [smooth_heatmap(m, f, config.student_sigma) for m, f in zip(maps, fov, strict=True)]
    )
    healthy = (grades == 0) & fov.any(axis=(1, 2))
    if not healthy.any():
        raise ValueError(
            "the lesion student needs grade-0 training images (its exact negatives, and the "
            "source of its levels); the training split has none with a field of view"
        )
    maxima = np.max(smoothed[healthy], axis=(1, 2), where=fov[healthy], initial=-np.inf)
    tau_pos = float(np.quantile(maxima, config.student_positive_quantile))
    tau_neg = float(np.quantile(maxima, config.student_negative_quantile))
    diseased = (grades >= 1)[:, None, None] & fov
    positive = diseased & (smoothed >= tau_pos)
    if not positive.any():
        raise ValueError(
            f"no pixel of a grade >= 1 training image reaches the lesion level {tau_pos:.6g} "
            f"(quantile {config.student_positive_quantile} of the {int(healthy.sum())} grade-0 "
            "images' map maxima): the teacher map separates nothing; lower "
            "--student_positive_quantile or choose another --student_teacher_method"
        )
    background = ((grades == 0)[:, None, None] & fov) | (diseased & (smoothed < tau_neg))
    targets = positive.astype(np.float32)
    weights = (positive | background).astype(np.float32)
    return targets, weights, tau_pos, tau_neg


def pseudo_masks(
    teacher_maps: np.ndarray, fov_masks: np.ndarray, grades: np.ndarray, config: StudentConfig
) -> tuple[np.ndarray, np.ndarray]:
    """The student's targets and pixel weights, by the rule of the module docstring.

    Parameters
    ----------
    teacher_maps:
        (N, S, S) teacher maps of the training images.
    fov_masks:
        (N, S, S) field-of-view masks (> 0.5 inside).
    grades:
        (N,) DR grades, -1 (any negative) for an ungraded image.
    config:
        ``student_sigma`` and the two quantiles.

    Returns
    -------
    targets, weights:
        float32 (N, S, S): 1 for lesion, 0 for background; 1 where the pixel is labelled, 0
        where it is ignored.

    Raises
    ------
    ValueError
        For arrays of the wrong shapes or non-finite maps, when no grade-0 image has a
        field of view, or when no pixel of a grade >= 1 image reaches τ+.
    """
    targets, weights, _, _ = _pseudo_masks(teacher_maps, fov_masks, grades, config)
    return targets, weights


def balanced_weights(targets: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pixel weights scaled per class so that lesion and background pixels each carry half of
    the labelled weight: ``weights · n / (2 · n_class)``, n counting labelled pixels
    (scikit-learn's ``compute_class_weight("balanced")``)."""
    labelled = weights > 0
    lesion = labelled & (targets > 0.5)
    count, lesions = int(labelled.sum()), int(lesion.sum())
    if lesions == 0 or lesions == count:
        raise ValueError("class balancing needs labelled lesion and background pixels")
    scale = np.where(lesion, count / (2.0 * lesions), count / (2.0 * (count - lesions)))
    return (weights * scale).astype(np.float32)


def adjust_to_prior(student: keras.Model, targets: np.ndarray, weights: np.ndarray) -> None:
    """Shift the student's last bias by -log(background / lesion pixels labelled).

    Trained on balanced classes, the student's sigmoid estimates the lesion probability at
    even odds; subtracting the log of the labelled background-to-lesion ratio from its logit
    (logit adjustment, Menon et al., ICLR 2021, arXiv 2007.07314) makes it the probability
    at the pseudo-masks' own lesion rate, so 0.5 means "more likely a lesion than not"
    (on the quickstart run, 0.56 rings per grade-0 test photograph instead of 4.3).
    """
    labelled = weights > 0
    lesions = int((labelled & (targets > 0.5)).sum())
    background = int(labelled.sum()) - lesions
    last = student.get_layer("maps")
    kernel, bias = last.get_weights()
    last.set_weights([kernel, bias - np.float32(np.log(background / lesions))])


def augment_together(
    image: tf.Tensor, target: tf.Tensor, weight: tf.Tensor, seed: tf.Tensor
) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
    """One random flip and quarter turn (stateless ``seed``) of an image (S, S, 3) and its
    target and weight maps (S, S), applied to all three alike."""
    stacked = tf.concat([image, target[..., tf.newaxis], weight[..., tf.newaxis]], axis=-1)
    moved = augment_image(stacked, seed, DIHEDRAL)
    return moved[..., :3], moved[..., 3], moved[..., 4]


def teacher_inputs(
    teacher: HeatmapFunction, train: Source, image_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Images (N, S, S, 3), FOV masks (N, S, S), grades (N,) and teacher maps (N, S, S) of
    the training split, cropped as evaluation crops them; photographs the pipeline refuses
    are left out, each named on stderr."""
    settings = pipeline.PipelineConfig(
        image_size=image_size, batch_size=_TEACHER_BATCH, augment=None, seed=0
    )
    parts: dict[str, list[np.ndarray]] = {"image": [], "mask": [], "grade": [], "map": []}
    for batch in pipeline.dataset_for_evaluation(train, settings):
        problems = batch["problem"].numpy()
        usable = problems == b""
        names = batch["path"] if "path" in batch else batch["image_id"]
        for name, problem in zip(names.numpy()[~usable], problems[~usable], strict=True):
            _log(f"lesion student: skipped {name.decode()}: {problem.decode()}")
        if not usable.any():
            continue
        images = tf.boolean_mask(batch["image"], usable)
        masks = tf.boolean_mask(batch["mask"], usable)
        _, maps = teacher(images, masks)
        parts["image"].append(images.numpy())
        parts["mask"].append(masks.numpy())
        parts["grade"].append(batch["grade"].numpy()[usable])
        parts["map"].append(np.asarray(maps))
    if not parts["image"]:
        raise ValueError("the lesion student has no usable training photograph")
    return tuple(np.concatenate(parts[key]) for key in ("image", "mask", "grade", "map"))


def _batches(
    images: np.ndarray, targets: np.ndarray, weights: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Endless shuffled, augmented (image, target (S, S, 1), weight) batches."""
    examples = tf.data.Dataset.from_tensor_slices(
        (tf.constant(images), tf.constant(targets), tf.constant(weights))
    )
    examples = examples.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    seeds = tf.data.Dataset.random(seed=seed).batch(2)

    def augment(example, pair):
        image, target, weight = augment_together(*example, pair)
        return image, target[..., tf.newaxis], weight

    return (
        tf.data.Dataset.zip((examples, seeds))
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        .batch(batch_size, drop_remainder=True)
        .prefetch(tf.data.AUTOTUNE)
    )


def _fit_round(
    images: np.ndarray,
    fov: np.ndarray,
    grades: np.ndarray,
    maps: np.ndarray,
    config: StudentConfig,
    seed: int,
    verbose: int,
    label: str,
) -> keras.Model:
    targets, weights, tau_pos, tau_neg = _pseudo_masks(maps, fov, grades, config)
    labelled = weights > 0
    _log(
        f"lesion student {label}: levels {tau_pos:.4g} (lesion) and {tau_neg:.4g} "
        f"(background); {int((targets > 0).sum())} lesion and "
        f"{int((labelled & (targets == 0)).sum())} background pixels, "
        f"{int((fov > 0.5).sum() - labelled.sum())} FOV pixels ignored"
    )
    keras.utils.set_random_seed(seed)
    size = images.shape[1]
    model = segmentation_net(
        size, 1, config.student_width, config.student_depth, name="lesion_student"
    )
    model.compile(
        optimizer=keras.optimizers.Adam(config.student_learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
    )
    steps = len(images) // config.student_batch_size
    batches = _batches(
        images, targets, balanced_weights(targets, weights), config.student_batch_size, seed
    )
    _log(
        f"training the lesion student {label}: {config.student_epochs} epochs of {steps} steps "
        f"on {len(images)} images at {size} px"
    )
    model.fit(batches, epochs=config.student_epochs, steps_per_epoch=steps, verbose=verbose)
    adjust_to_prior(model, targets, weights)
    return model


def student_maps(student: keras.Model, images: np.ndarray, fov: np.ndarray) -> np.ndarray:
    """The student's FOV-masked lesion maps (N, S, S) of numpy images, in batches."""
    compute = tf.function(lambda x, m: lesion_map(student, x, m), reduce_retracing=True)
    parts = [
        compute(
            tf.constant(images[i : i + _TEACHER_BATCH]), tf.constant(fov[i : i + _TEACHER_BATCH])
        )
        for i in range(0, len(images), _TEACHER_BATCH)
    ]
    return np.concatenate([part.numpy() for part in parts])


def train_student(
    teacher: HeatmapFunction,
    train: Source,
    image_size: int,
    config: StudentConfig,
    seed: int = 0,
    verbose: int = 1,
) -> keras.Model:
    """Train the lesion student on pseudo-masks of ``teacher``'s maps of ``train``.

    Parameters
    ----------
    teacher:
        The screening model's heatmap function (``(images, fov_masks) -> (grades, maps)``,
        e.g. `drscreen.evaluation.runner.heatmap_function`).
    train:
        The training split.
    image_size:
        Input side of the screening model (a multiple of
        `drscreen.models.segmentation.min_side` of ``config.student_depth``).
    config:
        The rule's parameters, the network and its training (`StudentConfig`).
    seed:
        Seeds weights, shuffling and augmentation (round r uses ``seed + r - 1``).
    verbose:
        Keras progress display (0 silent, 1 bar, 2 a line per epoch).

    Returns
    -------
    The student of the last round: (N, S, S, 3) in [0, 255] -> (N, S, S, 1) probabilities.

    Raises
    ------
    ValueError
        As `pseudo_masks`; or fewer usable training images than ``student_batch_size``.
    """
    _log(f"lesion student: {config.student_teacher_method} maps of the training split")
    images, fov, grades, maps = teacher_inputs(teacher, train, image_size)
    if len(images) < config.student_batch_size:
        raise ValueError(
            f"the lesion student needs at least --student_batch_size="
            f"{config.student_batch_size} usable training images, the split has {len(images)}"
        )
    student = None
    for round_index in range(1, config.student_rounds + 1):
        if student is not None:
            maps = student_maps(student, images, fov)
        label = f"round {round_index} of {config.student_rounds}"
        student = _fit_round(
            images, fov, grades, maps, config, seed + round_index - 1, verbose, label
        )
    return student
