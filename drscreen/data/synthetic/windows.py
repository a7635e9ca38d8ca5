"""Pixel windows around a point, clipped to the frame: the one place painters get them from.

A painter draws a small shape (a lesion, a druse, the optic disc) by computing its opacity on
the window of pixels around its centre and blending that window of the image in place. The
centre may lie near, on or past the frame's edge (a druse drawn around the fovea, a sheen
beside a vessel), so the window is clipped to the frame; it may then be empty. The slices and
the coordinate offsets always describe the same pixels, so ``image[window.rows, window.cols]``
and any array computed from ``window.dx`` and ``window.dy`` have the same shape.
Must not paint.
"""

import dataclasses
import math

import numpy as np


@dataclasses.dataclass(frozen=True)
class Window:
    """The pixels of a frame within a square around a point.

    Attributes
    ----------
    rows, cols:
        Slices of the frame, with ``0 <= start <= stop <= frame side``.
    dx:
        float32 (1, width): column of each window pixel minus the point's x.
    dy:
        float32 (height, 1): row of each window pixel minus the point's y.
    """

    rows: slice
    cols: slice
    dx: np.ndarray
    dy: np.ndarray

    @property
    def shape(self) -> tuple[int, int]:
        """(height, width) of the window."""
        return self.dy.shape[0], self.dx.shape[1]

    @property
    def origin(self) -> tuple[int, int]:
        """(row, column) of the window's top-left pixel in the frame."""
        return self.rows.start, self.cols.start

    @property
    def empty(self) -> bool:
        """True when the square lies wholly outside the frame."""
        return self.dy.shape[0] == 0 or self.dx.shape[1] == 0


def _span(centre: float, half: int, length: int) -> tuple[int, int]:
    """[start, stop) of the pixels within `half` of `centre`, clipped to [0, length]."""
    pixel = math.floor(centre)
    start = min(max(0, pixel - half), length)
    stop = min(max(start, pixel + half + 1), length)
    return start, stop


def clipped_window(shape: tuple[int, ...], cx: float, cy: float, half: float) -> Window:
    """The window of a frame of `shape` within ``ceil(half) + 2`` pixels of (cx, cy).

    Parameters
    ----------
    shape:
        Shape of the frame, (height, width, ...).
    cx, cy:
        Centre in pixels; may lie outside the frame.
    half:
        Half the side of the square, in pixels (a 2-pixel margin is added).

    Returns
    -------
    Window
        Clipped to the frame, possibly empty.
    """
    height, width = shape[:2]
    margin = int(math.ceil(half)) + 2
    x0, x1 = _span(cx, margin, width)
    y0, y1 = _span(cy, margin, height)
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] - np.float32(cx)
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] - np.float32(cy)
    return Window(slice(y0, y1), slice(x0, x1), dx, dy)
