"""Tests of lesion candidates, matching and FROC on a hand-made 6x8 heatmap.

The heatmap (row, column): candidate A = (1,1) 1.0 + (1,2) 0.6; candidate B = (4,1) 0.8;
candidate C = (3,5) 0.7 + (2,6) 0.55, joined only diagonally (8-connectivity); (0,4) 0.4
is below half the maximum; (5,7) 0.9 lies outside the field of view (last column).
Hemorrhage mask: L1 = (1,2)+(1,3) overlaps A, L2 = (5,4) is missed, L3 = (2,6) overlaps C.
The same heatmap's local maxima (peaks rule) are (1,1) 1.0, (4,1) 0.8, (3,5) 0.7, (0,4) 0.4.
"""

import numpy as np
import pytest

from drscreen.evaluation import lesions

COMPONENTS = lesions.CandidateConfig("components")


def hand_heatmap() -> np.ndarray:
    heatmap = np.zeros((6, 8), np.float32)
    heatmap[1, 1], heatmap[1, 2] = 1.0, 0.6
    heatmap[4, 1] = 0.8
    heatmap[3, 5], heatmap[2, 6] = 0.7, 0.55
    heatmap[0, 4] = 0.4
    heatmap[5, 7] = 0.9
    return heatmap


def hand_fov() -> np.ndarray:
    fov = np.ones((6, 8), bool)
    fov[:, 7] = False
    return fov


def hand_mask() -> np.ndarray:
    mask = np.zeros((6, 8), np.uint8)
    mask[1, 2:4] = 1  # L1
    mask[5, 4] = 1  # L2
    mask[2, 6] = 1  # L3
    return mask


def test_candidates_by_hand():
    """Three candidates A, B, C with scores 1.0, 0.8, 0.7 (C is one 8-connected component)."""
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), COMPONENTS)
    assert sorted(candidates.scores.tolist(), reverse=True) == pytest.approx([1.0, 0.8, 0.7])
    assert candidates.label_map[3, 5] == candidates.label_map[2, 6] > 0
    assert candidates.label_map[0, 4] == 0 and candidates.label_map[5, 7] == 0


def test_absolute_threshold_is_one_level_for_all_images():
    """At a global level of 0.75 only A (1.0) and B (0.8) remain."""
    config = lesions.CandidateConfig("components", absolute_threshold=0.75)
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), config)
    assert sorted(candidates.scores.tolist()) == pytest.approx([0.8, 1.0])


def test_flat_heatmap_has_no_candidate():
    """A heatmap without positive relevance yields no candidate."""
    assert lesions.extract_candidates(np.zeros((4, 4)), None, COMPONENTS).scores.size == 0
    assert lesions.extract_candidates(np.zeros((4, 4))).scores.size == 0


def test_matching_by_hand():
    """A and C hit (L1, L3), B is a false positive; L1 scored 1.0, L2 missed, L3 0.7."""
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), COMPONENTS)
    matched = lesions.match_candidates(candidates, hand_mask(), hand_fov())
    hits = dict(zip(np.round(matched.scores, 2).tolist(), matched.hits.tolist(), strict=True))
    assert hits == {1.0: True, 0.8: False, 0.7: True}
    assert sorted(matched.lesion_scores.tolist()) == pytest.approx([-np.inf, 0.7, 1.0])


def test_froc_by_hand():
    """Thresholds 1.0, 0.8, 0.7 give (FP, sens) = (0, 1/3), (1, 1/3), (1, 2/3).

    Sensitivity at 1/8, 1/4, 1/2 FP/image is 1/3 and at 1, 2, 4, 8 it is 2/3, so the
    FROC score is (3 * 1/3 + 4 * 2/3) / 7 = 11/21.
    """
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), COMPONENTS)
    curve = lesions.froc_curve([lesions.match_candidates(candidates, hand_mask(), hand_fov())])
    np.testing.assert_allclose(curve.false_positives_per_image, [0, 0, 1, 1])
    np.testing.assert_allclose(curve.sensitivity, [0, 1 / 3, 1 / 3, 2 / 3])
    assert (curve.lesions, curve.images) == (3, 1)
    assert curve.sensitivity_at(0.5) == pytest.approx(1 / 3)
    assert curve.sensitivity_at(1.0) == pytest.approx(2 / 3)
    assert curve.score() == pytest.approx(11 / 21)


def test_lesion_overlapped_by_two_candidates_is_detected_once():
    """Two candidates on one lesion: both hits, one lesion detected at the higher score."""
    heatmap = np.zeros((3, 7), np.float32)
    heatmap[1, 1], heatmap[1, 5] = 1.0, 0.9
    mask = np.zeros((3, 7), np.uint8)
    mask[1, 1:6] = 1
    matched = lesions.match_candidates(lesions.extract_candidates(heatmap, None, COMPONENTS), mask)
    assert matched.hits.tolist() == [True, True]
    assert matched.lesion_scores.tolist() == pytest.approx([1.0])
    curve = lesions.froc_curve([matched])
    np.testing.assert_allclose(curve.sensitivity, [0, 1, 1])


def test_image_score_ignores_outside_fov():
    """The 0.9 outside the FOV does not count; 1.0 is the maximum inside."""
    heatmap = hand_heatmap()
    heatmap[1, 1] = 0.3
    assert lesions.image_score(heatmap, hand_fov()) == pytest.approx(0.8)


def test_shape_mismatch_names_the_input():
    """A mask of another size is refused with its name."""
    candidates = lesions.extract_candidates(hand_heatmap(), None, COMPONENTS)
    with pytest.raises(ValueError, match="lesion mask"):
        lesions.match_candidates(candidates, np.zeros((5, 5)))


def test_one_candidate_detects_one_lesion_the_one_it_overlaps_most():
    """A blob over two lesions is one hit: 1 of 2 lesions detected, not both."""
    heatmap = np.zeros((6, 10), np.float32)
    heatmap[1:5, 1:9] = 1.0  # one candidate spanning both lesions
    mask = np.zeros((6, 10), np.uint8)
    mask[2, 2] = 1  # lesion 1: one pixel under the blob
    mask[2:4, 6:8] = 1  # lesion 2: four pixels under the blob
    matched = lesions.match_candidates(lesions.extract_candidates(heatmap, None, COMPONENTS), mask)
    assert matched.hits.tolist() == [True]
    lesion_scores = sorted(matched.lesion_scores.tolist())
    assert lesion_scores == [-np.inf, 1.0]
    curve = lesions.froc_curve([matched])
    assert curve.sensitivity_at(1.0) == pytest.approx(0.5)


def test_peaks_by_hand():
    """Local maxima inside the FOV, highest first: (1,1), (4,1), (3,5), (0,4)."""
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov())
    assert candidates.scores.tolist() == pytest.approx([1.0, 0.8, 0.7, 0.4])
    assert candidates.positions.tolist() == [[1, 1], [4, 1], [3, 5], [0, 4]]
    assert candidates.label_map is None


def test_peaks_keep_the_highest():
    """max_candidates keeps the highest local maxima."""
    config = lesions.CandidateConfig(max_candidates=2)
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), config)
    assert candidates.scores.tolist() == pytest.approx([1.0, 0.8])


def test_peak_matching_by_hand():
    """Tolerance 2 px: (1,1) and (0,4) reach L1 (distances 1, 1.41), (3,5) reaches L3 (1.41),
    (4,1) is 3.16 px from every lesion: a false positive; L1 scores 1.0, L3 0.7, L2 (5,4)
    is missed (lesions are labelled in scan order: L1, L3, L2)."""
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov())
    matched = lesions.match_candidates(candidates, hand_mask(), hand_fov())
    assert matched.hits.tolist() == [True, False, True, True]
    assert matched.lesion_scores.tolist() == pytest.approx([1.0, 0.7, -np.inf])


def test_peak_tolerance_is_a_distance():
    """Tolerance 1 px: only (1,1), 1 px from L1, detects; the diagonal (3,5)-(2,6) does not."""
    config = lesions.CandidateConfig(tolerance_px=1.0)
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov(), config)
    matched = lesions.match_candidates(candidates, hand_mask(), hand_fov())
    assert matched.hits.tolist() == [True, False, False, False]


def test_peak_detects_the_nearest_lesion_only():
    """A peak 2 px from lesion A and 1 px from lesion B detects B, and only B."""
    heatmap = np.zeros((3, 6), np.float32)
    heatmap[0, 2] = 1.0
    mask = np.zeros((3, 6), np.uint8)
    mask[0, 0] = mask[0, 3] = 1
    matched = lesions.match_candidates(lesions.extract_candidates(heatmap), mask)
    assert matched.hits.tolist() == [True]
    assert matched.lesion_scores.tolist() == [-np.inf, 1.0]


def test_peak_froc_by_hand():
    """Peaks: 1/3 sensitivity at 0 FP; L3 (0.7) after the false positive (0.8)."""
    candidates = lesions.extract_candidates(hand_heatmap(), hand_fov())
    curve = lesions.froc_curve([lesions.match_candidates(candidates, hand_mask(), hand_fov())])
    assert curve.sensitivity_at(0.5) == pytest.approx(1 / 3)
    assert curve.sensitivity_at(1.0) == pytest.approx(2 / 3)


def test_smoothing_keeps_a_constant_map_constant_up_to_the_fov_border():
    """Normalised convolution: a constant heatmap stays constant inside the FOV, 0 outside."""
    fov = np.zeros((20, 20), bool)
    fov[3:17, 3:17] = True
    smoothed = lesions.smooth_heatmap(np.full((20, 20), 2.0, np.float32), fov, sigma=2.0)
    assert smoothed[fov] == pytest.approx(2.0, rel=1e-5)
    assert not smoothed[~fov].any()


def test_smoothing_merges_speckle_into_one_peak():
    """Two spikes 2 px apart are two peaks unsmoothed, one peak between them at sigma 2."""
    heatmap = np.zeros((15, 15), np.float32)
    heatmap[7, 6] = heatmap[7, 8] = 1.0
    assert lesions.extract_candidates(heatmap).scores.size == 2
    smoothed = lesions.extract_candidates(heatmap, None, lesions.CandidateConfig(sigma=2.0))
    assert smoothed.scores.size == 1
    assert smoothed.positions.tolist() == [[7, 7]]


def test_bad_candidate_config_is_named():
    """An unknown rule or a negative smoothing is refused with its name."""
    with pytest.raises(ValueError, match="rule"):
        lesions.CandidateConfig("blobs")
    with pytest.raises(ValueError, match="sigma"):
        lesions.CandidateConfig(sigma=-1.0)


def test_candidates_to_mark_are_the_strong_peaks_strongest_first():
    """Three Gaussian spots of heights 1, 0.8 and 0.3 on a 96 px map (σ 2 px after smoothing):
    the two at or above half the highest are marked, at their centres, strongest first; a
    spot outside the FOV is not; an all-zero map marks nothing."""
    rows, cols = np.mgrid[:96, :96]

    def spot(row, col, height):
        return height * np.exp(-((rows - row) ** 2 + (cols - col) ** 2) / (2 * 3.0**2))

    heatmap = spot(20, 30, 1.0) + spot(60, 70, 0.8) + spot(70, 20, 0.3) + spot(5, 90, 2.0)
    fov = np.ones((96, 96), bool)
    fov[:12, 80:] = False
    marked = lesions.candidates_to_mark(heatmap, fov)
    np.testing.assert_array_equal(marked, [[20, 30], [60, 70]])
    assert lesions.candidates_to_mark(heatmap, fov, relative_level=0.2).shape == (3, 2)
    assert lesions.candidates_to_mark(heatmap, fov, count=1).tolist() == [[20, 30]]
    assert lesions.candidates_to_mark(np.zeros((96, 96)), fov).shape == (0, 2)
