"""Tests of the spatial-size arithmetic of conv/pool stacks."""

import pytest

from drscreen.models.oO import net_a_steps, net_b_steps
from drscreen.models.small import small_steps
from drscreen.models.stack import Conv, MaxPool, RMSPool, body_sizes, min_input_size, output_size


def test_output_size_by_hand():
    """'same' conv: ceil(s / stride); 'valid' pool: (s - k) // stride + 1."""
    assert output_size(448, Conv(32, 5, 2)) == 224
    assert output_size(111, Conv(64, 5, 2)) == 56
    assert output_size(224, MaxPool()) == 111
    assert output_size(6, RMSPool(3, 3)) == 2
    assert output_size(6, RMSPool(3, 2)) == 2
    with pytest.raises(ValueError, match="at least 3x3"):
        output_size(2, MaxPool())


def test_net_a_sizes_at_448():
    """Hand-derived: 224 224 | 111 | 56 56 56 | 27 | 27x3 | 13 | 13x3 | 6 | 6 6 | 2."""
    assert body_sizes(net_a_steps(), 448) == (
        224, 224, 111, 56, 56, 56, 27, 27, 27, 27, 13, 13, 13, 13, 6, 6, 6, 2,
    )  # fmt: skip


def test_net_b_sizes_at_448():
    """Hand-derived: as net A with a single 16n conv and RMS pool 3/2 (6 -> 2)."""
    assert body_sizes(net_b_steps(), 448) == (
        224, 224, 111, 56, 56, 56, 27, 27, 27, 27, 13, 13, 13, 13, 6, 6, 2,
    )  # fmt: skip


def test_min_input_sizes():
    """Backwards from a 3x3 last pooling: 3 <- 7 <- 15 <- 31 <- 61 <- 123 <- 245 (net A/B);
    small: 1 <- 3 <- 7 <- 15 <- 31 <- 61."""
    assert min_input_size(net_a_steps(4)) == 245
    assert min_input_size(net_b_steps(4)) == 245
    assert min_input_size(small_steps(4)) == 61
    assert body_sizes(small_steps(), 192) == (96, 47, 47, 23, 23, 11, 11, 5, 5)
