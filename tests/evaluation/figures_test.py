"""Tests that every report figure is written as a readable PNG from the metric dicts: its
size, and that the plotted values (not only frame and titles) reach its pixels."""

import copy
import dataclasses

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


def _image(path: str) -> np.ndarray:
    with open(path, "rb") as f:
        assert f.read(8) == PNG_SIGNATURE
    return cv2.imread(path)


def _assert_draws(draw, data, altered, tmp_path, shape: tuple[int, int]) -> None:
    """``draw`` writes a PNG of ``shape`` (height, width) pixels, and ``altered`` (the same
    data with only the plotted values changed, titles and legends alike) changes at least
    0.2 % of its pixels (0.6 % to 26 % measured): the data is drawn, not only the frame."""
    drawn = _image(draw(data, str(tmp_path / "drawn.png")))
    other = _image(draw(altered, str(tmp_path / "altered.png")))
    assert drawn.shape == other.shape == (*shape, 3)
    changed = float(np.any(drawn != other, axis=-1).mean())
    assert changed > 2e-3, changed


def test_roc_figure(tmp_path):
    """ROC figure of both binary tasks, 11 x 5.2 inches at 120 dpi; the curve is drawn."""
    metrics = screening_metrics()
    altered = copy.deepcopy(metrics)
    roc = altered["referable_dr"]["roc"]
    roc["true_positive_rate"] = roc["false_positive_rate"]  # the AUC in the title unchanged
    _assert_draws(figures.plot_roc, metrics, altered, tmp_path, (624, 1320))


def test_froc_figure(tmp_path):
    """FROC figure of the types and groups with lesions, 8 x 6 inches; the curves are drawn."""
    metrics = lesion_metrics()
    assert set(metrics) >= {HEMORRHAGE, "red_lesions", "bright_lesions"}
    assert set(RED_LESIONS) & set(metrics) and set(BRIGHT_LESIONS) & set(metrics)
    altered = copy.deepcopy(metrics)
    froc = altered[HEMORRHAGE]["froc"]
    froc["sensitivity"] = [value / 2 for value in froc["sensitivity"]]
    _assert_draws(figures.plot_froc, metrics, altered, tmp_path, (720, 960))


def test_reliability_figure(tmp_path):
    """Reliability diagram of a sigmoid-of-ŷ probability, 5.5 x 6.2 inches; the observed
    fractions are drawn."""
    rng = np.random.default_rng(2)
    labels = rng.random(400) < 0.3
    probabilities = 1 / (1 + np.exp(-(2 * labels - 1 + rng.normal(0, 1.2, 400))))
    metrics = calibration.evaluate_calibration(labels, probabilities)
    altered = {**metrics, "observed_frequency": [1 - v for v in metrics["observed_frequency"]]}
    _assert_draws(figures.plot_reliability, metrics, altered, tmp_path, (744, 660))


def test_gallery_figure(tmp_path):
    """Gallery of four cases: image with contours above, heatmap overlay below, 12.8 x 6.6
    inches; the heatmaps are drawn."""
    rng = np.random.default_rng(3)
    cases = []
    for kind in ("best", "worst", "false positive", "miss"):
        image, heatmap, mask, _ = synthetic_fundus(rng)
        cases.append(figures.GalleryCase(image, heatmap, mask, f"{kind}: image {len(cases)}"))
    altered = [dataclasses.replace(case, heatmap=case.heatmap.T) for case in cases]
    _assert_draws(figures.plot_gallery, cases, altered, tmp_path, (792, 1536))


def test_gallery_rejects_mismatched_heatmap(tmp_path):
    """A heatmap of another size than its image is refused with the case's title."""
    case = figures.GalleryCase(np.zeros((8, 8, 3)), np.zeros((4, 4)), None, "case x")
    with pytest.raises(ValueError, match="case x"):
        figures.plot_gallery([case], str(tmp_path / "g.png"))


def test_referral_figure(tmp_path):
    """Referral curves of two uncertainties, one fraction without AUC (one class kept),
    11 x 4.8 inches; the curves are drawn."""
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
    altered = copy.deepcopy(section)
    altered["curves"]["tta_spread"]["accuracy"] = [
        1 - value for value in section["curves"]["tta_spread"]["accuracy"]
    ]
    _assert_draws(figures.plot_referral_curves, section, altered, tmp_path, (576, 1320))
    with pytest.raises(ValueError, match="no referral curve"):
        figures.plot_referral_curves({"skipped": "one class"}, str(tmp_path / "none.png"))
