"""Tests that every report figure is written as a readable PNG from the metric dicts."""

import cv2
import numpy as np
import pytest

from drscreen.data.lesions import BRIGHT_LESIONS, HARD_EXUDATE, HEMORRHAGE, RED_LESIONS
from drscreen.evaluation import calibration, figures, referral, screening, streaming

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def synthetic_fundus(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, ...]:
    """An orange disc with dark red dots, its heatmap (dots + noise) and the dot mask."""
    y, x = np.mgrid[:size, :size]
    disc = (y - size / 2) ** 2 + (x - size / 2) ** 2 < (0.45 * size) ** 2
    image = np.zeros((size, size, 3), np.float32)
    image[disc] = (200, 90, 40)
    mask = np.zeros((size, size), np.uint8)
    for cy, cx in rng.integers(size // 4, 3 * size // 4, size=(3, 2)):
        mask[cy - 1 : cy + 2, cx - 1 : cx + 2] = 1
    image[mask > 0] = (90, 20, 10)
    heatmap = 0.3 * rng.random((size, size)) + mask * rng.uniform(0.2, 1.0)
    return image, heatmap.astype(np.float32) * disc, mask, disc


def screening_metrics() -> dict:
    rng = np.random.default_rng(0)
    grades = rng.integers(0, 5, 300)
    predictions = grades + rng.normal(0, 0.9, 300)
    config = screening.ScreeningConfig(n_bootstrap=100)
    return screening.evaluate_screening(grades, predictions, grades, predictions, None, config)


def lesion_metrics() -> dict:
    rng = np.random.default_rng(1)
    accumulator = streaming.LesionAccumulator(lesion_types=(HEMORRHAGE, HARD_EXUDATE))
    for i in range(8):
        _, heatmap, mask, disc = synthetic_fundus(rng)
        other = np.roll(mask, 9, axis=1) * (i % 2)
        accumulator.add(str(i), heatmap, {HEMORRHAGE: mask, HARD_EXUDATE: other}, disc)
    return accumulator.metrics()


def _assert_png(path) -> None:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE


def test_roc_figure(tmp_path):
    """ROC figure of both binary tasks."""
    _assert_png(figures.plot_roc(screening_metrics(), str(tmp_path / "roc.png")))


def test_froc_figure(tmp_path):
    """FROC figure of the types and groups with lesions."""
    metrics = lesion_metrics()
    assert set(metrics) >= {HEMORRHAGE, "red_lesions", "bright_lesions"}
    assert set(RED_LESIONS) & set(metrics) and set(BRIGHT_LESIONS) & set(metrics)
    _assert_png(figures.plot_froc(metrics, str(tmp_path / "froc.png")))


def test_reliability_figure(tmp_path):
    """Reliability diagram of a sigmoid-of-ŷ probability."""
    rng = np.random.default_rng(2)
    labels = rng.random(400) < 0.3
    probabilities = 1 / (1 + np.exp(-(2 * labels - 1 + rng.normal(0, 1.2, 400))))
    metrics = calibration.evaluate_calibration(labels, probabilities)
    _assert_png(figures.plot_reliability(metrics, str(tmp_path / "reliability.png")))


def test_gallery_figure(tmp_path):
    """Gallery of four cases: image with contours above, heatmap overlay below."""
    rng = np.random.default_rng(3)
    cases = []
    for kind in ("best", "worst", "false positive", "miss"):
        image, heatmap, mask, _ = synthetic_fundus(rng)
        cases.append(figures.GalleryCase(image, heatmap, mask, f"{kind}: image {len(cases)}"))
    _assert_png(figures.plot_gallery(cases, str(tmp_path / "gallery.png")))


def test_gallery_rejects_mismatched_heatmap(tmp_path):
    """A heatmap of another size than its image is refused with the case's title."""
    case = figures.GalleryCase(np.zeros((8, 8, 3)), np.zeros((4, 4)), None, "case x")
    with pytest.raises(ValueError, match="case x"):
        figures.plot_gallery([case], str(tmp_path / "g.png"))


def test_referral_figure(tmp_path):
    """Referral curves of two uncertainties, one fraction without AUC (one class kept)."""
    rng = np.random.default_rng(4)
    labels = rng.random(200) < 0.4
    scores = labels + rng.normal(0, 0.8, 200)
    curves = {
        name: referral.referral_curve(labels, scores, rng.random(200), threshold=0.5)
        for name in ("tta_spread", "entropy")
    }
    curves["entropy"]["auc"][-1] = None
    section = {
        "curves": curves, "auc_plain": 0.81, "operating_point": "validation sensitivity 0.90",
        "images": 200, "views": ["identity", "flip_left_right"],
    }  # fmt: skip
    path = figures.plot_referral_curves(section, str(tmp_path / "referral.png"))
    _assert_png(path)
    assert cv2.imread(path).shape[:2] == (576, 1320)  # 11 x 4.8 inches at 120 dpi
    with pytest.raises(ValueError, match="no referral curve"):
        figures.plot_referral_curves({"skipped": "one class"}, str(tmp_path / "none.png"))
