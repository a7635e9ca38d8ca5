"""Test-time augmentation: grades and heatmaps over flipped and rotated views of each image.

As o_O averaged its predictions over flips and rotations, `tta_compute` runs the model on
views of each image (`VIEWS`: the flips and rotations of the square, which keep every pixel
and so can be undone exactly), maps each view's heatmap back to the original orientation and
averages them; the grades of the views are returned one per view, so that their spread is an
uncertainty (`drscreen.evaluation.referral`). The default `FLIPS` keep a fundus photograph
plausible (a left-right flip turns a right eye into a left eye, an up-down flip swaps the
vascular arcades); `DIHEDRAL` adds the quarter turns, which a network trained without
rotations has rarely seen.

All views of a batch go through the model as one batch of ``len(views) * N`` images.
"""

from collections.abc import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from drscreen.data.fundus import field_of_view_mask
from drscreen.heatmaps.api import compute

_H, _W = 1, 2


def _identity(x: tf.Tensor) -> tf.Tensor:
    return x


def _transpose(x: tf.Tensor) -> tf.Tensor:
    return tf.transpose(x, [0, 2, 1, 3] if x.shape.rank == 4 else [0, 2, 1])


def _flip_left_right(x: tf.Tensor) -> tf.Tensor:
    return tf.reverse(x, [_W])


def _flip_up_down(x: tf.Tensor) -> tf.Tensor:
    return tf.reverse(x, [_H])


def _rotate_180(x: tf.Tensor) -> tf.Tensor:
    return tf.reverse(x, [_H, _W])


def _rotate_90(x: tf.Tensor) -> tf.Tensor:
    """np.rot90(k=1) of each (H, W) image: a quarter turn counter-clockwise."""
    return tf.reverse(_transpose(x), [_H])


def _rotate_270(x: tf.Tensor) -> tf.Tensor:
    return tf.reverse(_transpose(x), [_W])


def _transverse(x: tf.Tensor) -> tf.Tensor:
    return tf.reverse(_transpose(x), [_H, _W])


VIEWS: dict[str, tuple[Callable, Callable]] = {
    "identity": (_identity, _identity),
    "flip_left_right": (_flip_left_right, _flip_left_right),
    "flip_up_down": (_flip_up_down, _flip_up_down),
    "rotate_180": (_rotate_180, _rotate_180),
    "rotate_90": (_rotate_90, _rotate_270),
    "rotate_270": (_rotate_270, _rotate_90),
    "transpose": (_transpose, _transpose),
    "transverse": (_transverse, _transverse),
}
"""View name -> (transform, its inverse) of a batch (N, H, W[, C]) of square images."""
FLIPS = ("identity", "flip_left_right", "flip_up_down", "rotate_180")
DIHEDRAL = tuple(VIEWS)
VIEW_SETS = {"none": ("identity",), "flips": FLIPS, "dihedral": DIHEDRAL}
"""Named view sets of the commands' ``--tta`` option."""


def check_views(views: Sequence[str]) -> tuple[str, ...]:
    """``views`` as a tuple, refusing an empty set, a repeat or an unknown view."""
    views = tuple(views)
    unknown = [view for view in views if view not in VIEWS]
    if not views or unknown or len(set(views)) != len(views):
        raise ValueError(f"test-time views {views} must be distinct names among {', '.join(VIEWS)}")
    return views


def stack_views(images: tf.Tensor, views: Sequence[str]) -> tf.Tensor:
    """(V * N, ...) the views of a batch, view-major (all images of view 0 first)."""
    return tf.concat([VIEWS[view][0](images) for view in views], axis=0)


def tta_grades(
    model: keras.Model, images: tf.Tensor | np.ndarray, views: Sequence[str] = FLIPS
) -> tf.Tensor:
    """The model's grades (N, V) of each view of each image (one forward pass)."""
    views = check_views(views)
    images = tf.convert_to_tensor(images, tf.float32)
    grades = model(stack_views(images, views), training=False)[:, 0]
    return tf.transpose(tf.reshape(grades, [len(views), -1]))


def tta_compute(
    model: keras.Model,
    images: tf.Tensor | np.ndarray,
    method: str = "sensitivity",
    fov_masks: tf.Tensor | np.ndarray | None = None,
    views: Sequence[str] = FLIPS,
) -> tuple[tf.Tensor, tf.Tensor]:
    """Grades of each view and the view-averaged heatmap, in the original orientation.

    Parameters
    ----------
    model, images, method, fov_masks:
        As `drscreen.heatmaps.compute`; the masks (derived from the images when omitted)
        are transformed with the images.
    views:
        Names of `VIEWS`; ``("identity",)`` is `compute` itself.

    Returns
    -------
    grades:
        (N, V) the grade of each view (column 0 is the first view, the plain image for
        the default views).
    heatmaps:
        (N, H, W) mean over the views of each view's heatmap mapped back.
    """
    views = check_views(views)
    images = tf.convert_to_tensor(images, tf.float32)
    masks = field_of_view_mask(images) if fov_masks is None else tf.cast(fov_masks, tf.float32)
    grades, heatmaps = compute(
        model, stack_views(images, views), method, fov_masks=stack_views(masks, views)
    )
    count = tf.shape(images)[0]
    restored = [
        VIEWS[view][1](heatmaps[index * count : (index + 1) * count])
        for index, view in enumerate(views)
    ]
    grades = tf.transpose(tf.reshape(grades, [len(views), -1]))
    return grades, tf.add_n(restored) / float(len(views))
