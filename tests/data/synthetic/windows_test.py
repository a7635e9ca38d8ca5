"""Tests for clipped pixel windows: slices and offsets describe the same pixels everywhere."""

import numpy as np
import pytest

from drscreen.data.synthetic.windows import clipped_window

_FRAME = np.zeros((20, 30, 3), np.float32)


def test_window_inside_the_frame():
    """A centre well inside: margin ceil(half) + 2 on each side, offsets from the centre."""
    window = clipped_window(_FRAME.shape, 10.5, 8.25, 1.2)
    assert (window.rows, window.cols) == (slice(4, 13), slice(6, 15))
    np.testing.assert_array_equal(window.dx[0], np.arange(6, 15) - np.float32(10.5))
    np.testing.assert_array_equal(window.dy[:, 0], np.arange(4, 13) - np.float32(8.25))
    assert window.origin == (4, 6) and not window.empty


def test_window_cut_by_the_frame():
    """A centre just past the bottom-right corner keeps the pixels inside the frame."""
    window = clipped_window(_FRAME.shape, 30.5, 20.5, 2.0)
    assert (window.rows, window.cols) == (slice(16, 20), slice(26, 30))
    np.testing.assert_array_equal(window.dx[0], np.arange(26, 30) - np.float32(30.5))


@pytest.mark.parametrize(
    "cx, cy",
    [(-13.0, 5.0), (-0.5, 5.0), (5.0, -40.0), (45.0, 5.0), (5.0, 25.0), (-9.0, -9.0), (60, 60)],
)
def test_window_matches_its_slice_anywhere(cx, cy):
    """Around any centre (also wholly outside), the frame's slice has the window's shape."""
    window = clipped_window(_FRAME.shape, cx, cy, 3.0)
    assert _FRAME[window.rows, window.cols].shape[:2] == window.shape
    for piece, length in ((window.rows, 20), (window.cols, 30)):
        assert 0 <= piece.start <= piece.stop <= length


def test_window_wholly_outside_is_empty():
    """A square that misses the frame gives an empty window (the old code sliced 0:-4)."""
    window = clipped_window(_FRAME.shape, -13.0, 5.0, 3.0)
    assert window.empty and window.shape == (11, 0)
