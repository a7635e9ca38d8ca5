"""Synthetic fundus photographs for export: warmup requests and int8 calibration data.

Owns turning `drscreen.data.synthetic` photographs into what an export needs: encoded JPEG
bytes (the ``serving_default`` input) and float32 images cropped and resized by the training
pre-processing (the float input). Deterministic for a given seed. Must not write files.
"""

import cv2
import numpy as np
import tensorflow as tf

from drscreen.data.fundus import decode_and_preprocess
from drscreen.data.synthetic import SynthConfig, generate_fundus

PHOTO_SIZE = 128  # side of the generated photographs before the crop to the model input


def encoded_photographs(count: int, seed: int = 0) -> list[bytes]:
    """``count`` synthetic fundus photographs (mixed grades) as JPEG bytes.

    Raises
    ------
    ValueError
        If ``count`` is not positive.
    """
    if count < 1:
        raise ValueError(f"count must be positive, got {count}")
    config = SynthConfig(n=count, size=PHOTO_SIZE, seed=seed, difficulty="easy")
    encoded = []
    for index in range(count):
        fundus = generate_fundus(config, index)
        ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(fundus.image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise RuntimeError(f"OpenCV could not encode synthetic photograph {index} as JPEG")
        encoded.append(jpeg.tobytes())
    return encoded


def preprocessed_images(encoded: list[bytes], size: int) -> tuple[np.ndarray, np.ndarray]:
    """Decode and crop photographs as the exported ``serving_default`` does.

    Returns
    -------
    images:
        float32 (N, size, size, 3) in [0, 255].
    masks:
        float32 (N, size, size) field-of-view masks.
    """
    pairs = [decode_and_preprocess(tf.constant(item), size) for item in encoded]
    images = np.stack([image.numpy() for image, _ in pairs])
    masks = np.stack([mask.numpy() for _, mask in pairs])
    return images, masks
