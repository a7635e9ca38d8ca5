"""Images/s of the tf.data pipeline against a plain OpenCV loop doing the same work.

    python bench/pipeline_throughput.py [--num_images=100] [--size=512] [--repeats=2]

Writes ~100 synthetic-looking 768x1024 fundus JPEGs to a temporary folder, then times
(a) `drscreen.data.pipeline.dataset_for_evaluation`: parallel decode + field-of-view crop +
resize to `size` (TensorFlow, all cores), and (b) a Python loop with OpenCV: decode, the o_O
bounding-box crop with numpy, resize with INTER_AREA. Prints both rates and their ratio.
"""

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from drscreen.data import pipeline  # noqa: E402
from drscreen.data.records import FundusRecord  # noqa: E402

_NUM_IMAGES = flags.DEFINE_integer("num_images", 100, "JPEGs to generate.")
_SIZE = flags.DEFINE_integer("size", 512, "Output side in pixels.")
_REPEATS = flags.DEFINE_integer("repeats", 2, "Timed passes over the images (best is kept).")


def _write_images(folder: str, count: int) -> list[FundusRecord]:
    rng = np.random.default_rng(0)
    records = []
    for i in range(count):
        image = np.zeros((768, 1024, 3), np.uint8)
        centre = (512 + int(rng.integers(-40, 40)), 384 + int(rng.integers(-20, 20)))
        cv2.circle(image, centre, 420, (30, 70, 170), -1)  # BGR orange-red, clipped top/bottom
        for _ in range(12):
            start = (int(rng.integers(200, 800)), int(rng.integers(100, 650)))
            end = (int(rng.integers(200, 800)), int(rng.integers(100, 650)))
            cv2.line(image, start, end, (20, 40, 110), int(rng.integers(2, 8)))
        noise = rng.normal(0, 4, image.shape)
        image = np.clip(image + noise, 0, 255).astype(np.uint8)
        path = os.path.join(folder, f"{i}.jpeg")
        cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 90])
        records.append(FundusRecord(str(i), path, i % 5, str(i)))
    return records


def _opencv_pass(records: list[FundusRecord], size: int) -> None:
    for record in records:
        image = cv2.cvtColor(cv2.imread(record.image_path), cv2.COLOR_BGR2RGB)
        blurred = cv2.blur(image.max(axis=2), (5, 5))
        rows = np.flatnonzero((blurred > blurred[:, :20].max() + 10).any(axis=1))
        cols = np.flatnonzero((blurred > blurred[:, :20].max() + 10).any(axis=0))
        cropped = image[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
        cv2.resize(cropped, (size, size), interpolation=cv2.INTER_AREA)


def _tf_pass(records: list[FundusRecord], size: int) -> None:
    config = pipeline.PipelineConfig(image_size=size, batch_size=16, augment=None)
    for _ in pipeline.dataset_for_evaluation(records, config):
        pass


def _best_rate(fn, records: list[FundusRecord], size: int, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn(records, size)
        best = min(best, time.perf_counter() - start)
    return len(records) / best


def main(argv: list[str]) -> None:
    del argv
    with tempfile.TemporaryDirectory() as folder:
        records = _write_images(folder, _NUM_IMAGES.value)
        _tf_pass(records[:4], _SIZE.value)  # trace once
        tf_rate = _best_rate(_tf_pass, records, _SIZE.value, _REPEATS.value)
        cv_rate = _best_rate(_opencv_pass, records, _SIZE.value, _REPEATS.value)
    print(f"images: {len(records)} JPEGs 768x1024 -> {_SIZE.value} px, cores: {os.cpu_count()}")
    print(f"tf.data pipeline (decode + FOV crop + resize): {tf_rate:.1f} images/s")
    print(f"OpenCV Python loop (decode + bbox crop + resize): {cv_rate:.1f} images/s")
    print(f"ratio tf.data / OpenCV: {tf_rate / cv_rate:.2f}")


if __name__ == "__main__":
    app.run(main)
