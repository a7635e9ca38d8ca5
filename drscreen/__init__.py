"""drscreen: diabetic-retinopathy screening with exportable, trainable heatmaps.

Implements Quellec et al., "Deep image mining for diabetic retinopathy screening",
Medical Image Analysis 39 (2017), on Keras 3 with the TensorFlow backend.
"""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

__version__ = "0.1.0"
