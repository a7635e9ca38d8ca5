"""The pixel-supervised reference: its targets, its augmentation and that it learns masks."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen.benchmark import reference
from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, LESION_TYPES, MICROANEURYSM
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset


def test_group_targets_are_the_unions_of_each_groups_types():
    masks = np.zeros((1, 4, 4, len(LESION_TYPES)), np.uint8)
    masks[0, 0, 0, LESION_TYPES.index(MICROANEURYSM)] = 1
    masks[0, 1, 1, LESION_TYPES.index(HEMORRHAGE)] = 1
    masks[0, 2, 2, LESION_TYPES.index(HARD_EXUDATE)] = 1
    targets = reference._group_targets(tf.constant(masks)).numpy()
    red, bright = targets[0, ..., 0], targets[0, ..., 1]
    assert list(reference.GROUPS) == ["red_lesions", "bright_lesions"]
    assert red[0, 0] == red[1, 1] == 1 and red.sum() == 2
    assert bright[2, 2] == 1 and bright.sum() == 1


def test_augmentation_moves_image_and_targets_together():
    tf.random.set_seed(0)
    pattern = np.random.default_rng(0).uniform(0, 1, (8, 8, 1)).astype(np.float32)
    image = np.repeat(pattern * 255, 3, axis=-1)
    target = np.concatenate([pattern, 1 - pattern], axis=-1)
    for _ in range(8):
        moved_image, moved_target = reference._dihedral(tf.constant(image), tf.constant(target))
        np.testing.assert_allclose(
            moved_image.numpy()[..., 0] / 255, moved_target.numpy()[..., 0], rtol=1e-6
        )


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=16, size=64, seed=2), folder, 1, progress=False)
    return read_dataset("synthetic", folder)


def test_reference_learns_the_masks_and_maps_stay_in_the_fov(records):
    """Training lowers the focal loss on the training images; each group's map is a
    probability inside the field of view and 0 outside."""
    pairs, steps = reference.training_pairs(records, 64, 16, seed=0)
    images, targets = next(iter(pairs))
    untrained = reference.reference_net(64, width=4)
    loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75)
    before = float(loss(targets, untrained(images)))
    model = reference.train_reference(records, 64, width=4, epochs=40, seed=0, verbose=0)
    after = float(loss(targets, model(images)))
    assert steps == 1 and after < before
    fov = tf.cast(tf.reduce_max(images, axis=-1) > 10, tf.float32)
    for name, fn in reference.heatmap_functions(model).items():
        grades, maps = fn(images, fov)
        maps = maps.numpy()
        assert name.startswith("reference_") and maps.shape == (16, 64, 64)
        assert maps.min() >= 0 and maps.max() <= 1 and not maps[fov.numpy() == 0].any()
        np.testing.assert_allclose(grades.numpy(), maps.reshape(16, -1).max(axis=1), rtol=1e-6)
