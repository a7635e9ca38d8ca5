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
    probability inside the field of view and 0 outside; the all-lesion map is their
    pixel-wise maximum."""
    pairs, steps = reference.training_pairs(records, 64, 16, seed=0)
    images, targets = next(iter(pairs))
    untrained = reference.reference_net(64, width=4)
    loss = keras.losses.BinaryFocalCrossentropy(apply_class_balancing=True, alpha=0.75)
    before = float(loss(targets, untrained(images)))
    config = reference.ReferenceConfig(width=4, epochs=40)
    model = reference.train_reference(records, 64, config, seed=0, verbose=0)
    after = float(loss(targets, model(images)))
    assert steps == 1 and after < before
    fov = tf.cast(tf.reduce_max(images, axis=-1) > 10, tf.float32)
    maps = {name: fn(images, fov) for name, fn in reference.heatmap_functions(model).items()}
    assert list(maps) == [
        "reference_red_lesions",
        "reference_bright_lesions",
        "reference_all_lesions",
    ]
    for grades, heatmap in maps.values():
        heatmap = heatmap.numpy()
        assert heatmap.shape == (16, 64, 64)
        assert heatmap.min() >= 0 and heatmap.max() <= 1 and not heatmap[fov.numpy() == 0].any()
        np.testing.assert_allclose(grades.numpy(), heatmap.reshape(16, -1).max(axis=1), rtol=1e-6)
    red, bright, both = (maps[name][1].numpy() for name in maps)
    assert not np.allclose(red, bright)
    np.testing.assert_array_equal(both, np.maximum(red, bright))


def test_dice_bce_by_hand():
    """One 1x1x2 map: BCE of (1, 0.8) and (0, 0.2) is -log 0.8 each; Dice of channel 0 is
    1 - (2·0.8 + 1) / (1 + 0.8 + 1), of channel 1 (no target) 1 - 1 / (0.2 + 1)."""
    targets = tf.constant([[[[1.0, 0.0]]]])
    maps = tf.constant([[[[0.8, 0.2]]]])
    dice = ((1 - 2.6 / 2.8) + (1 - 1 / 1.2)) / 2
    expected = -np.log(0.8) + dice
    assert float(reference.dice_bce_loss(targets, maps)) == pytest.approx(expected, rel=1e-5)


def test_training_in_blocks_reaches_the_asked_epochs(records):
    """train_to counts epochs in all: asking for fewer than done trains nothing."""
    training = reference.ReferenceTraining(
        records, 64, reference.ReferenceConfig(width=4, epochs=3, augmentation=False), seed=0
    )
    training.train_to(2, verbose=0)
    weights = [w.copy() for w in training.model.get_weights()]
    training.train_to(1, verbose=0)
    assert training.epochs == 2
    for before, after in zip(weights, training.model.get_weights(), strict=True):
        np.testing.assert_array_equal(before, after)
    training.train_to(3, verbose=0)
    assert training.epochs == 3
    assert any(
        not np.array_equal(b, a) for b, a in zip(weights, training.model.get_weights(), strict=True)
    )


def test_bad_reference_config_is_named():
    with pytest.raises(ValueError, match="loss 'l1'"):
        reference.ReferenceConfig(loss="l1")
    with pytest.raises(ValueError, match="must be >= 1"):
        reference.ReferenceConfig(depth=0)
