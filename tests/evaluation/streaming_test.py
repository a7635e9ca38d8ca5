"""Tests of the batch-by-batch accumulators on the hand-made case of `lesions_test`.

Image "one" is the 6x8 hand case (hemorrhages L1, L2, L3; candidates A 1.0 hit, B 0.8
false, C 0.7 hit); image "two" has no lesion and one candidate of score 2.0.
"""

import numpy as np
import pytest
from sklearn import metrics

from drscreen.data.lesions import HARD_EXUDATE, HEMORRHAGE, MICROANEURYSM
from drscreen.evaluation import heatmap_quality, streaming
from tests.evaluation.lesions_test import COMPONENTS, hand_fov, hand_heatmap, hand_mask


def _two_images(pointing_tolerance_px: int = 3) -> streaming.LesionAccumulator:
    accumulator = streaming.LesionAccumulator(
        lesion_types=(HEMORRHAGE, MICROANEURYSM),
        candidate_config=COMPONENTS,
        pointing_tolerance_px=pointing_tolerance_px,
    )
    microaneurysm = np.zeros((6, 8), np.uint8)
    microaneurysm[4, 1] = 1  # under candidate B
    accumulator.add(
        "one", hand_heatmap(), {HEMORRHAGE: hand_mask(), MICROANEURYSM: microaneurysm}, hand_fov()
    )
    second = np.zeros((6, 8), np.float32)
    second[3, 3] = 2.0
    empty = np.zeros((6, 8), np.uint8)
    accumulator.add_batch(["two"], second[None], [{HEMORRHAGE: empty}], hand_fov()[None])
    return accumulator


def test_counts_for_progress():
    """Two images, 3 + 1 candidates."""
    accumulator = _two_images()
    assert (accumulator.count, accumulator.candidates) == (2, 4)


def test_froc_over_two_images_by_hand():
    """Thresholds 2.0, 1.0, 0.8, 0.7 give (FP/image, sens) (.5, 0), (.5, 1/3), (1, 1/3), (1, 2/3).

    Sensitivity at 1/8, 1/4: 0; at 1/2: 1/3; at 1, 2, 4, 8: 2/3; FROC score 3/7.
    """
    result = _two_images().metrics()[HEMORRHAGE]
    assert result["lesions"] == 3 and result["images"] == 2
    assert result["sensitivity_at_fp"]["0.5"] == pytest.approx(1 / 3)
    assert result["sensitivity_at_fp"]["1"] == pytest.approx(2 / 3)
    assert result["froc_score"] == pytest.approx(3 / 7)


def test_image_auc_relevance_mass_and_pointing_game():
    """Lesion-free image scores higher (2.0 > 1.0): AUC 0; mass 1.15 / 4.05 on image one.

    The argmax (1, 1) is one pixel from L1: a hit with 3 px tolerance, a miss with none.
    """
    result = _two_images().metrics()[HEMORRHAGE]
    assert result["image_auc"] == 0.0
    assert result["relevance_mass"] == pytest.approx(1.15 / 4.05)
    assert result["pointing_game"] == 1.0
    assert _two_images(pointing_tolerance_px=0).metrics()[HEMORRHAGE]["pointing_game"] == 0.0


def test_group_is_union_of_annotated_members():
    """Red lesions of image one: L1, L2, L3 and the microaneurysm; B now hits too."""
    result = _two_images().metrics()["red_lesions"]
    assert result["lesions"] == 4
    # Thresholds 2.0, 1.0, 0.8, 0.7: FP/image stays 0.5; sensitivities 0, 1/4, 2/4, 3/4.
    assert result["sensitivity_at_fp"]["0.5"] == pytest.approx(3 / 4)
    assert result["sensitivity_at_fp"]["0.25"] == 0.0


def test_unannotated_type_is_skipped():
    """Microaneurysms were annotated on image one only; bright lesions on none."""
    result = _two_images().metrics()
    assert result[MICROANEURYSM]["images"] == 1
    assert "bright_lesions" not in result


def test_gallery_ids():
    """The false positive is the lesion-free image; the miss is the only image with lesions."""
    ids = _two_images().gallery_ids(HEMORRHAGE, per_kind=1)
    assert ids == {"best": ["one"], "worst": ["one"], "false_positive": ["two"], "miss": ["one"]}


def test_screening_accumulator_concatenates_batches():
    """Batches are kept in order; patient ids default to image ids."""
    accumulator = streaming.ScreeningAccumulator()
    accumulator.add([0, 2], [0.1, 2.2], ["a", "b"])
    accumulator.add([4], [3.9], ["c"], patient_ids=["p"])
    arrays = accumulator.arrays()
    assert accumulator.count == 3
    np.testing.assert_array_equal(arrays["grades"], [0, 2, 4])
    np.testing.assert_array_equal(arrays["patient_ids"], ["a", "b", "p"])


def test_screening_accumulator_rejects_ragged_batch():
    """Batch arrays of different lengths are refused with their sizes."""
    with pytest.raises(ValueError, match="2 grades, 1 predictions"):
        streaming.ScreeningAccumulator().add([0, 1], [0.5], ["a", "b"])


def test_perturbation_accumulator_means_per_image_areas():
    """Mean areas over batches equal the mean of the per-batch function's areas."""
    rng = np.random.default_rng(0)
    images = rng.random((3, 8, 8, 3)).astype(np.float32)
    heatmaps = rng.random((3, 8, 8)).astype(np.float32)
    config = heatmap_quality.PerturbationConfig(steps=4)

    def score_fn(x):
        return x[:, :4].mean(axis=(1, 2, 3))

    accumulator = streaming.PerturbationAccumulator(score_fn, config)
    accumulator.add(images[:2], heatmaps[:2])
    accumulator.add(images[2:], heatmaps[2:])
    curves = heatmap_quality.perturbation_curves(images, heatmaps, score_fn, config)
    result = accumulator.metrics()
    assert accumulator.count == 3
    assert result["deletion_auc"] == pytest.approx(curves.deletion_auc.mean())
    assert result["insertion_auc"] == pytest.approx(curves.insertion_auc.mean())


def test_lesion_image_auc_matches_sklearn_on_random_images():
    """Image AUC per type equals sklearn's over max-in-FOV scores."""
    rng = np.random.default_rng(1)
    accumulator = streaming.LesionAccumulator(lesion_types=(HEMORRHAGE,), groups={})
    present, scores = [], []
    for i in range(12):
        heatmap = rng.random((16, 16)).astype(np.float32)
        mask = np.zeros((16, 16), np.uint8)
        if i % 3 == 0:
            mask[4:7, 4:7] = 1
            heatmap[5, 5] += 0.5
        accumulator.add(str(i), heatmap, {HEMORRHAGE: mask})
        present.append(mask.any())
        scores.append(heatmap.max())
    assert accumulator.metrics()[HEMORRHAGE]["image_auc"] == pytest.approx(
        metrics.roc_auc_score(present, scores)
    )


def test_zero_heatmaps_give_null_mass_with_reason_and_pointing_misses():
    """Grad-CAM of an untrained model: every heatmap zero. No warning (pytest errors on one);
    relevance mass None with a reason, pointing game 0/2, no candidate, image AUC 1/2 (ties)."""
    accumulator = streaming.LesionAccumulator(lesion_types=(HEMORRHAGE,), groups={})
    lesion = np.zeros((6, 8), np.uint8)
    lesion[0, 0] = 1  # where argmax of zeros lands
    empty = np.zeros((6, 8), np.uint8)
    for image_id, mask in (("a", lesion), ("b", lesion), ("c", empty)):
        accumulator.add(image_id, np.zeros((6, 8), np.float32), {HEMORRHAGE: mask})
    result = accumulator.metrics()[HEMORRHAGE]
    assert result["relevance_mass"] is None
    assert "zero" in result["undefined"]["relevance_mass"]
    assert result["zero_heatmap_images"] == 2
    assert result["pointing_game"] == 0.0
    assert result["image_auc"] == 0.5
    assert result["froc_score"] == 0.0 and accumulator.candidates == 0
    assert accumulator.gallery_ids(HEMORRHAGE)["best"] == []


def test_relevance_mass_averages_only_nonzero_heatmaps():
    """One zero heatmap among two with lesions: the mean is image one's 1.15 / 4.05 alone."""
    accumulator = streaming.LesionAccumulator(lesion_types=(HEMORRHAGE,), groups={})
    accumulator.add("one", hand_heatmap(), {HEMORRHAGE: hand_mask()}, hand_fov())
    accumulator.add("zero", np.zeros((6, 8), np.float32), {HEMORRHAGE: hand_mask()}, hand_fov())
    result = accumulator.metrics()[HEMORRHAGE]
    assert result["relevance_mass"] == pytest.approx(1.15 / 4.05)
    assert result["zero_heatmap_images"] == 1
    assert result["pointing_game"] == 0.5
    assert result["undefined"] == {"image_auc": "no annotated image without this lesion type"}


def test_relevance_mass_is_named_by_its_target():
    """One computation, one key per target: red lesions, and the union of every type."""
    accumulator = streaming.LesionAccumulator()
    heatmap = np.array([[1.0, 2.0], [3.0, 4.0]], np.float32)
    masks = {
        MICROANEURYSM: np.array([[1, 0], [0, 0]], np.uint8),
        HARD_EXUDATE: np.array([[0, 0], [0, 1]], np.uint8),
    }
    accumulator.add("a", heatmap, masks)
    found = accumulator.metrics()
    assert found["red_lesions"]["relevance_mass"] == pytest.approx(1.0 / 10.0)
    assert found["bright_lesions"]["relevance_mass"] == pytest.approx(4.0 / 10.0)
    assert found["all_lesions"]["relevance_mass"] == pytest.approx((1.0 + 4.0) / 10.0)


def test_diagnostic_ignores_peaks_on_the_other_group_only():
    """An exudate under candidate B (a false positive for hemorrhages, 0.8): the red FROC
    ignoring bright lesions drops B, so the 0.8 threshold adds no false positive.

    Red lesions: L1, L2, L3. Without B, thresholds 2.0, 1.0, 0.7 give (FP/image, sens)
    (.5, 0), (.5, 1/3), (.5, 2/3): 2/3 from 1/2 FP on, FROC (0 + 0 + 5 · 2/3) / 7 = 10/21.
    Today's red FROC keeps B: 3/7 (as `test_froc_over_two_images_by_hand`). Image two has no
    bright group annotated, so nothing is ignored there.
    """
    accumulator = streaming.LesionAccumulator(
        lesion_types=(HEMORRHAGE, HARD_EXUDATE), candidate_config=COMPONENTS
    )
    exudate = np.zeros((6, 8), np.uint8)
    exudate[4, 1] = 1  # under candidate B
    accumulator.add(
        "one", hand_heatmap(), {HEMORRHAGE: hand_mask(), HARD_EXUDATE: exudate}, hand_fov()
    )
    second = np.zeros((6, 8), np.float32)
    second[3, 3] = 2.0
    accumulator.add("two", second, {HEMORRHAGE: np.zeros((6, 8), np.uint8)}, hand_fov())
    metrics = accumulator.metrics()
    assert metrics["red_lesions"]["froc_score"] == pytest.approx(3 / 7)
    diagnostic = metrics["red_lesions_ignoring_bright"]
    assert diagnostic["lesions"] == 3 and "not a result" in diagnostic["diagnostic"]
    assert diagnostic["froc_score"] == pytest.approx(10 / 21)
    # Bright lesions: the exudate is hit by B; A and C sit on hemorrhages and are ignored.
    assert metrics["bright_lesions"]["sensitivity_at_fp"]["0.5"] == 0.0
    assert metrics["bright_lesions_ignoring_red"]["sensitivity_at_fp"]["0.125"] == 1.0
