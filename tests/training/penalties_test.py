"""Heatmap penalties against values computed by hand on a 2x2 map."""

import math

import numpy as np
import pytest
import tensorflow as tf

from drscreen.training import penalties

# One image H = [[1, -2], [0, 4]] with FOV M = [[1, 1], [1, 0]]; a second all-zero image with a
# full FOV halves every batch mean.
HEATMAPS = tf.constant([[[1.0, -2.0], [0.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]])
MASKS = tf.constant([[[1.0, 1.0], [1.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]])


def test_sparsity_is_mean_abs_inside_fov():
    """(|1| + |-2| + |0|) / 3 = 1 for the first image, 0 for the second."""
    assert float(penalties.sparsity(HEATMAPS, MASKS)) == pytest.approx((1.0 + 0.0) / 2)


def test_total_variation_counts_pairs_inside_fov():
    """Pairs inside: vertical |0-1| = 1, horizontal |-2-1| = 3; (1 + 3) / 3 pixels."""
    assert float(penalties.total_variation(HEATMAPS, MASKS)) == pytest.approx((4 / 3 + 0) / 2)


def test_entropy_is_normalised_shannon_entropy():
    """p = (1/3, 2/3, 0) over 3 FOV pixels: H(p) / log 3; the zero map gives 0."""
    p = np.array([1 / 3, 2 / 3])
    expected = -(p * np.log(p)).sum() / math.log(3)
    assert float(penalties.entropy(HEATMAPS, MASKS)) == pytest.approx(expected / 2, rel=1e-5)


def test_uniform_map_has_entropy_one():
    """A constant map over the whole FOV is maximally spread."""
    heatmaps = tf.ones((1, 4, 4))
    assert float(penalties.entropy(heatmaps, tf.ones((1, 4, 4)))) == pytest.approx(1.0, rel=1e-5)


def test_get_penalty_names_the_choices():
    """Unknown names list the available penalties."""
    assert penalties.get_penalty("sparsity") is penalties.sparsity
    with pytest.raises(ValueError, match="sparsity, total_variation, entropy"):
        penalties.get_penalty("l1")
