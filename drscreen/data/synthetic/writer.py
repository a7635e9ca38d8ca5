"""Writes a synthetic dataset to disk in the Kaggle DR 2015 layout, in parallel.

```
OUT/trainLabels.csv                  image,level (+ gradable,problem with ungradable images)
OUT/train/<image>.jpeg               RGB photograph, JPEG quality varying per image
OUT/masks/<lesion_type>/<image>.png  uint8 mask (0 / 255) for every type and image
OUT/lesions.csv                      image,lesion_type,center_x,center_y,radius,area
OUT/synth.json                       resolved config, drscreen version, counts per grade
```
Workers each generate and encode whole images; the parent writes the tables in image order,
so the bytes do not depend on the number of workers. A dataset asked for ungradable images
(`Difficulty.ungradable_fraction` > 0) has two more label columns: ``gradable`` (1 or 0)
and ``problem`` (the capture failure, empty when gradable); ``level`` stays the eye's grade.
Without them the files are those written before the option existed. Workers are *spawned*
(safe after TensorFlow is imported), so a script calling `write_dataset` with several workers
needs the usual ``if __name__ == "__main__":`` guard. Must not decide image content.
"""

import csv
import json
import multiprocessing
import os
import pathlib
import sys
import time

import cv2
import numpy as np

import drscreen
from drscreen.data.lesions import LESION_TYPES
from drscreen.data.synthetic.config import SynthConfig
from drscreen.data.synthetic.generator import LesionRow, generate_fundus
from drscreen.data.synthetic.ungradable import UNGRADABLE_KINDS

LABELS_FILE = "trainLabels.csv"
LESIONS_FILE = "lesions.csv"
CONFIG_FILE = "synth.json"
IMAGE_DIR = "train"
MASK_DIR = "masks"
LESION_COLUMNS = ("image", "lesion_type", "center_x", "center_y", "radius", "area")
QUALITY_COLUMNS = ("gradable", "problem")


def _single_threaded() -> None:
    """Pool initializer: one OpenCV thread per worker, so workers do not oversubscribe."""
    cv2.setNumThreads(1)


def _write_image(task: tuple[SynthConfig, str, int]) -> tuple[str, int, list[LesionRow], str]:
    config, out_dir, index = task
    out = pathlib.Path(out_dir)
    fundus = generate_fundus(config, index)
    bgr = cv2.cvtColor(fundus.image, cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpeg", bgr, [cv2.IMWRITE_JPEG_QUALITY, fundus.jpeg_quality])
    if not ok:
        raise OSError(f"{out / IMAGE_DIR / fundus.name}.jpeg: JPEG encoding failed")
    (out / IMAGE_DIR / f"{fundus.name}.jpeg").write_bytes(jpeg.tobytes())
    for kind, mask in fundus.masks.items():
        path = out / MASK_DIR / kind / f"{fundus.name}.png"
        if not cv2.imwrite(str(path), mask.astype(np.uint8) * 255):
            raise OSError(f"{path}: could not write the mask")
    return fundus.name, fundus.grade, fundus.lesions, fundus.problem


class _Progress:
    """One self-overwriting line on stderr: done/total, rate, time left."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start, self.last = total, enabled, time.monotonic(), 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if not self.enabled or (now - self.last < 0.5 and done < self.total):
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = (self.total - done) / rate if rate else 0.0
        sys.stderr.write(
            f"\rsynth: {done}/{self.total} images  {rate:.1f} img/s  {left:.0f} s left "
        )
        if done == self.total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def write_dataset(
    config: SynthConfig,
    out_dir: str | pathlib.Path,
    workers: int | None = None,
    progress: bool = True,
) -> pathlib.Path:
    """Generates ``config.n`` images into `out_dir` (see the module docstring for the layout).

    Parameters
    ----------
    config:
        The dataset's configuration.
    out_dir:
        Output folder; created if missing. Existing files of the same names are replaced.
    workers:
        Processes to use; ``None`` means ``os.cpu_count()``, 1 runs in this process.
    progress:
        Show a progress line on stderr.

    Returns
    -------
    `out_dir` as a path.
    """
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = pathlib.Path(out_dir)
    (out / IMAGE_DIR).mkdir(parents=True, exist_ok=True)
    for kind in LESION_TYPES:
        (out / MASK_DIR / kind).mkdir(parents=True, exist_ok=True)

    tasks = [(config, str(out), index) for index in range(config.n)]
    meter = _Progress(config.n, progress)
    results = []
    if workers == 1 or config.n == 1:
        for task in tasks:
            results.append(_write_image(task))
            meter.update(len(results))
    else:
        context = multiprocessing.get_context("spawn")
        with context.Pool(min(workers, config.n), initializer=_single_threaded) as pool:
            for result in pool.imap(_write_image, tasks, chunksize=4):
                results.append(result)
                meter.update(len(results))

    with_quality = config.params.ungradable_fraction > 0
    with open(out / LABELS_FILE, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(("image", "level", *(QUALITY_COLUMNS if with_quality else ())))
        for name, grade, _, problem in results:
            quality = (int(not problem), problem) if with_quality else ()
            writer.writerow((name, grade, *quality))
    with open(out / LESIONS_FILE, "w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(LESION_COLUMNS)
        for _, _, rows, _ in results:
            writer.writerows(
                tuple(getattr(row, column) for column in LESION_COLUMNS) for row in rows
            )
    grades = [grade for _, grade, _, _ in results]
    summary = {
        "config": config.to_dict(),
        "drscreen_version": drscreen.__version__,
        "images": config.n,
        "patients": config.num_patients,
        "grade_counts": {str(g): grades.count(g) for g in range(5)},
        "lesion_types": list(LESION_TYPES),
    }
    if with_quality:
        problems = [problem for _, _, _, problem in results if problem]
        summary["ungradable_counts"] = {kind: problems.count(kind) for kind in UNGRADABLE_KINDS}
    (out / CONFIG_FILE).write_text(json.dumps(summary, indent=2) + "\n")
    return out
