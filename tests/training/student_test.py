"""The lesion student: its pseudo-mask rule by hand, its augmentation, and that it learns."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf
from sklearn.metrics import roc_auc_score
from sklearn.utils.class_weight import compute_class_weight

from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.models.lesion_map import lesion_map
from drscreen.models.segmentation import segmentation_net
from drscreen.training import student
from drscreen.training.config import StudentConfig

OUT = -7.0  # a value outside the FOV, which no rule may read


def _hand_case() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Four 3x3 maps: grade 0 (FOV max -1), grade 0 (max 4), grade 2, ungraded; (2, 2) is
    outside every FOV and holds 100."""
    fov = np.ones((4, 3, 3), np.float32)
    fov[:, 2, 2] = 0
    maps = np.zeros((4, 3, 3), np.float32)
    maps[0] = [[-1, -2, -3], [-2, -1, -4], [-5, -1, 100]]
    maps[1] = [[0, 4, 0], [1, 0, 0], [0, 0, 100]]
    maps[2] = [[5, 4, 3.5], [1.5, 1.4, 0], [1, 0, 100]]
    maps[3] = [[9, 9, 9], [9, 9, 9], [9, 9, 100]]
    return maps, fov, np.array([0, 0, 2, -1])


def test_pseudo_masks_follow_the_rule_by_hand():
    """Grade-0 FOV maxima -1 and 4: τ+ (quantile 1) = 4, τ- (quantile 0.5) = 1.5; the grade-2
    image is lesion at >= 4, background below 1.5, ignored in [1.5, 4); grade 0 is
    background everywhere in the FOV; the ungraded image and the pixel outside the FOV are
    ignored."""
    maps, fov, grades = _hand_case()
    config = StudentConfig(
        student_sigma=0.0, student_positive_quantile=1.0, student_negative_quantile=0.5
    )
    targets, weights = student.pseudo_masks(maps, fov, grades, config)
    expected_targets = np.zeros((4, 3, 3), np.float32)
    expected_targets[2] = [[1, 1, 0], [0, 0, 0], [0, 0, 0]]
    expected_weights = np.zeros((4, 3, 3), np.float32)
    expected_weights[0] = expected_weights[1] = [[1, 1, 1], [1, 1, 1], [1, 1, 0]]
    expected_weights[2] = [[1, 1, 0], [0, 1, 1], [1, 1, 0]]
    np.testing.assert_array_equal(targets, expected_targets)
    np.testing.assert_array_equal(weights, expected_weights)


def test_levels_interpolate_between_grade_zero_maxima():
    """Maxima 1, 2, 10: quantile 0.75 = 6 (linear), quantile 0.25 = 1.5."""
    maps = np.zeros((4, 1, 4), np.float32)
    maps[0, 0, 0], maps[1, 0, 1], maps[2, 0, 2] = 1, 2, 10
    maps[3, 0] = [6.0, 5.99, 1.5, 1.49]
    fov = np.ones_like(maps)
    config = StudentConfig(
        student_sigma=0.0, student_positive_quantile=0.75, student_negative_quantile=0.25
    )
    targets, weights = student.pseudo_masks(maps, fov, np.array([0, 0, 0, 1]), config)
    np.testing.assert_array_equal(targets[3, 0], [1, 0, 0, 0])
    np.testing.assert_array_equal(weights[3, 0], [1, 0, 0, 1])


def test_smoothing_comes_before_the_levels():
    """With σ > 0 the levels and targets are those of the FOV-smoothed maps."""
    rng = np.random.default_rng(3)
    maps = rng.uniform(0, 1, (6, 16, 16)).astype(np.float32)
    maps[4:, 6:9, 6:9] += 4.0
    fov = np.ones_like(maps)
    fov[:, :, :2] = 0
    grades = np.array([0, 0, 0, 0, 1, 3])
    config = StudentConfig(
        student_sigma=1.5, student_positive_quantile=0.9, student_negative_quantile=0.5
    )
    smoothed = np.stack([_normalised_blur(m, f, 1.5) for m, f in zip(maps, fov, strict=True)])
    maxima = [smoothed[i][fov[i] > 0].max() for i in range(4)]
    tau_pos, tau_neg = np.quantile(maxima, 0.9), np.quantile(maxima, 0.5)
    targets, weights = student.pseudo_masks(maps, fov, grades, config)
    inside = fov[4:] > 0
    np.testing.assert_array_equal(targets[4:] > 0, inside & (smoothed[4:] >= tau_pos))
    labelled = inside & ((smoothed[4:] >= tau_pos) | (smoothed[4:] < tau_neg))
    np.testing.assert_array_equal(weights[4:] > 0, labelled)
    assert targets[4:].sum() > 0 and 0 < weights[4:].sum() < inside.sum()


def _normalised_blur(heatmap: np.ndarray, fov: np.ndarray, sigma: float) -> np.ndarray:
    """G * (H · FOV) / G * FOV inside the FOV, with an explicit Gaussian kernel (scipy-free)."""
    radius = int(np.ceil(4 * sigma))
    offsets = np.arange(-radius, radius + 1)
    kernel = np.exp(-(offsets**2) / (2 * sigma**2))
    kernel /= kernel.sum()

    def blur(values):
        padded = np.pad(values, radius, mode="reflect")
        rows = np.apply_along_axis(lambda r: np.convolve(r, kernel, "valid"), 1, padded)
        return np.apply_along_axis(lambda c: np.convolve(c, kernel, "valid"), 0, rows)

    inside = fov > 0
    blurred = blur(np.where(inside, heatmap, 0.0)) / np.maximum(blur(inside * 1.0), 1e-6)
    return np.where(inside, blurred, 0.0)


@pytest.mark.parametrize(
    ("grades", "maps", "message"),
    [
        (np.array([1, 2, -1, 3]), None, "needs grade-0 training images"),
        (np.array([0, 0, 2, -1]), "flat", "no pixel of a grade >= 1 training image reaches"),
        (np.array([0, 0, 2, -1]), "nan", "3 non-finite values in the FOV"),
        (np.array([0, 0, 2]), None, r"got \(4, 3, 3\), \(4, 3, 3\) and \(3,\)"),
    ],
)
def test_pseudo_masks_refuse_what_they_cannot_use(grades, maps, message):
    """No grade-0 image, no positive pixel, non-finite maps or mismatched shapes: named."""
    hand_maps, fov, _ = _hand_case()
    if maps == "flat":
        hand_maps[2] = np.where(hand_maps[2] >= 4, 1.0, hand_maps[2])
    elif maps == "nan":
        hand_maps[1, 0, :] = np.nan
    config = StudentConfig(student_sigma=0.0, student_positive_quantile=1.0)
    with pytest.raises(ValueError, match=message):
        student.pseudo_masks(hand_maps, fov, grades, config)


def test_balanced_weights_are_scikit_learns_class_weights():
    """Labelled lesion and background pixels get compute_class_weight('balanced'); ignored
    pixels stay 0."""
    rng = np.random.default_rng(0)
    targets = (rng.uniform(size=(3, 8, 8)) < 0.1).astype(np.float32)
    weights = (rng.uniform(size=(3, 8, 8)) < 0.7).astype(np.float32)
    balanced = student.balanced_weights(targets, weights)
    labelled = weights > 0
    classes = compute_class_weight("balanced", classes=np.array([0, 1]), y=targets[labelled])
    np.testing.assert_allclose(balanced[labelled], classes[targets[labelled].astype(int)])
    assert not balanced[~labelled].any()


def test_augmentation_moves_image_target_and_weight_together():
    """Over many seeds every pixel keeps its target and weight, and the 8 symmetries occur."""
    index = np.arange(64, dtype=np.float32).reshape(8, 8)
    image = np.stack([index, index * 2, index * 3], axis=-1)
    target, weight = index % 2, index % 3
    orientations = set()
    for draw in range(40):
        moved_image, moved_target, moved_weight = (
            value.numpy()
            for value in student.augment_together(
                tf.constant(image), tf.constant(target), tf.constant(weight), tf.constant([5, draw])
            )
        )
        np.testing.assert_array_equal(moved_target, moved_image[..., 0] % 2)
        np.testing.assert_array_equal(moved_weight, moved_image[..., 0] % 3)
        np.testing.assert_array_equal(moved_image[..., 1], moved_image[..., 0] * 2)
        np.testing.assert_array_equal(np.sort(moved_image[..., 0].ravel()), index.ravel())
        orientations.add(moved_image[..., 0].tobytes())
    assert len(orientations) == 8


def _dark_spots(images: tf.Tensor, fov: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """A fixed teacher: how much darker the green channel is than its 7x7 mean."""
    green = images[..., 1:2]
    darker = tf.nn.relu(tf.nn.avg_pool2d(green, 7, 1, "SAME") - green)[..., 0] * fov
    return tf.reduce_max(darker, axis=[1, 2]), darker


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=24, size=64, seed=2), folder, 1, progress=False)
    return read_dataset("synthetic", folder)


CONFIG = StudentConfig(
    student_sigma=1.0,
    student_positive_quantile=0.9,
    student_width=4,
    student_epochs=12,
    student_batch_size=8,
    student_learning_rate=3e-3,
)


def _weighted_loss(model, images, targets, weights) -> float:
    return float(
        keras.losses.BinaryCrossentropy()(targets[..., None], model(images), sample_weight=weights)
    )


def test_student_learns_its_pseudo_masks_and_is_zero_outside_the_fov(records, monkeypatch):
    """Training lowers the class-balanced loss on the training pseudo-masks; the prior
    adjustment then lowers the unbalanced one (its probability is at the masks' lesion
    rate); the lesion map ranks lesion above healthy pixels, is a probability, 0 outside the
    FOV, and differs between images."""
    images, fov, grades, maps = student.teacher_inputs(_dark_spots, records, 64)
    assert images.shape == (24, 64, 64, 3) and maps.shape == fov.shape == (24, 64, 64)
    targets, weights = student.pseudo_masks(maps, fov, grades, CONFIG)
    balanced = student.balanced_weights(targets, weights)
    keras.utils.set_random_seed(0)
    untrained = segmentation_net(64, 1, CONFIG.student_width, CONFIG.student_depth)
    trained = []
    adjust = student.adjust_to_prior

    def keeping_the_trained_student(model, *masks):
        trained.append(keras.models.clone_model(model))
        trained[-1].set_weights(model.get_weights())
        adjust(model, *masks)

    monkeypatch.setattr(student, "adjust_to_prior", keeping_the_trained_student)
    model = student.train_student(_dark_spots, records, 64, CONFIG, seed=0, verbose=0)
    before = _weighted_loss(untrained, images, targets, balanced)
    assert _weighted_loss(trained[0], images, targets, balanced) < 0.8 * before
    unbalanced = _weighted_loss(trained[0], images, targets, weights)
    assert _weighted_loss(model, images, targets, weights) < 0.5 * unbalanced
    lesions = lesion_map(model, tf.constant(images), tf.constant(fov)).numpy()
    assert lesions.min() >= 0 and lesions.max() <= 1
    assert not lesions[fov == 0].any()
    assert np.abs(lesions[0] - lesions[1]).max() > 0.1 * lesions.max() > 0
    healthy = (grades == 0)[:, None, None] & (fov > 0)
    scores = np.concatenate([lesions[targets > 0], lesions[healthy]])
    truth = np.concatenate([np.ones((targets > 0).sum()), np.zeros(healthy.sum())])
    assert roc_auc_score(truth, scores) > 0.9


def test_round_two_learns_from_round_one(records, monkeypatch):
    """Round 1 learns from the teacher's maps, round 2 from round 1's FOV-masked lesion map;
    the student returned is round 2's."""
    rounds = []
    fit_round = student._fit_round

    def recording(images, fov, grades, maps, *rest):
        model = fit_round(images, fov, grades, maps, *rest)
        rounds.append((images, fov, maps, model))
        return model

    monkeypatch.setattr(student, "_fit_round", recording)
    config = dataclasses.replace(CONFIG, student_epochs=2, student_rounds=2)
    returned = student.train_student(_dark_spots, records, 64, config, seed=0, verbose=0)
    (images, fov, first_maps, first), (_, _, second_maps, second) = rounds
    np.testing.assert_array_equal(first_maps, _dark_spots(images, fov)[1].numpy())
    expected = lesion_map(first, tf.constant(images), tf.constant(fov)).numpy()
    np.testing.assert_allclose(second_maps, expected, atol=1e-6)
    assert returned is second and second is not first


def test_too_few_images_are_refused(records):
    """A batch larger than the usable training images is a clear error."""
    config = StudentConfig(student_batch_size=64)
    with pytest.raises(ValueError, match="at least --student_batch_size=64 usable"):
        student.train_student(_dark_spots, records, 64, config, verbose=0)


def test_the_same_seed_trains_the_same_student(records):
    """Weights, shuffling and augmentation follow the seed: equal seeds, equal students; another
    seed, another one."""
    config = dataclasses.replace(CONFIG, student_epochs=1)
    first, again, other = (
        student.train_student(_dark_spots, records, 64, config, seed=seed, verbose=0)
        for seed in (4, 4, 5)
    )
    for a, b in zip(first.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert any(
        not np.array_equal(a, b)
        for a, b in zip(first.get_weights(), other.get_weights(), strict=True)
    )


def test_adjust_to_prior_shifts_the_logit_by_the_labelled_class_ratio():
    """Targets 1 on 2 of 8 labelled pixels (2 more ignored): logit' = logit - log(6 / 2)."""
    keras.utils.set_random_seed(0)
    model = segmentation_net(16, 1, width=2, depth=1)
    images = np.random.default_rng(1).uniform(0, 255, (2, 16, 16, 3)).astype(np.float32)
    before = model.predict(images, verbose=0)
    targets = np.zeros((1, 2, 5), np.float32)
    targets[0, 0, :2] = 1
    weights = np.ones_like(targets)
    weights[0, 1, 3:] = 0
    student.adjust_to_prior(model, targets, weights)
    after = model.predict(images, verbose=0)
    logit = np.log(before / (1 - before))
    np.testing.assert_allclose(after, 1 / (1 + np.exp(-(logit - np.log(3.0)))), atol=1e-5)
