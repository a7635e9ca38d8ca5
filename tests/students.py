"""A lesion student for the tests of its outputs: random weights whose maps differ."""

import keras

from drscreen.models.segmentation import segmentation_net


def scaled_student(size: int, seed: int = 3) -> keras.Model:
    """A random `segmentation_net` student (width 4) whose last kernel is scaled by 8, so that
    its maps span [0, 1], peak above 0.5 and differ between photographs."""
    keras.utils.set_random_seed(seed)
    student = segmentation_net(size, 1, width=4)
    last = student.get_layer("maps")
    kernel, bias = last.get_weights()
    last.set_weights([kernel * 8.0, bias])
    return student
