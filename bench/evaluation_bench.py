"""Benchmark: vectorised bootstrap AUC against a per-replicate loop; lesion reduction per image.

Run: python bench/evaluation_bench.py
Prints the time of 1000 bootstrap replicates both ways (n = 5000 images) and their ratio,
then the time to reduce one 512x512 heatmap to candidates matched against a lesion mask.
"""

import time

import numpy as np

from drscreen.evaluation import lesions, screening


def _loop_bootstrap(labels, scores, n_bootstrap, seed):
    rng = np.random.default_rng(seed)
    aucs = []
    for _ in range(n_bootstrap):
        draw = rng.integers(0, labels.size, labels.size)
        aucs.append(screening.roc_auc(labels[draw], scores[draw]))
    return np.array(aucs)


def main() -> None:
    rng = np.random.default_rng(0)
    labels = rng.random(5000) < 0.2
    scores = np.round(rng.normal(size=5000) + labels, 2)
    start = time.perf_counter()
    vectorised = screening.bootstrap_auc(labels, scores, n_bootstrap=1000, seed=0)
    vectorised_s = time.perf_counter() - start
    start = time.perf_counter()
    looped = _loop_bootstrap(labels, scores, 1000, seed=1)
    looped_s = time.perf_counter() - start
    print(
        f"bootstrap AUC, 1000 replicates, n=5000: vectorised {vectorised_s:.3f} s, "
        f"loop {looped_s:.3f} s, speed-up x{looped_s / vectorised_s:.1f} "
        f"(CI widths {np.ptp(np.percentile(vectorised, [2.5, 97.5])):.4f} vs "
        f"{np.ptp(np.percentile(looped, [2.5, 97.5])):.4f})"
    )

    heatmap = rng.random((512, 512)).astype(np.float32) ** 8
    mask = np.zeros((512, 512), np.uint8)
    for cy, cx in rng.integers(20, 492, size=(30, 2)):
        mask[cy - 3 : cy + 4, cx - 3 : cx + 4] = 1
    repeats = 20
    start = time.perf_counter()
    for _ in range(repeats):
        candidates = lesions.extract_candidates(heatmap, None, lesions.CandidateConfig(0.3))
        lesions.match_candidates(candidates, mask)
    per_image = (time.perf_counter() - start) / repeats
    print(
        f"candidates + matching, 512x512 heatmap ({candidates.scores.size} candidates): "
        f"{1000 * per_image:.1f} ms per image"
    )


if __name__ == "__main__":
    main()
