"""The validation study: σ search against the lesion module by hand, flip stability by hand."""

import numpy as np
import pytest
import tensorflow as tf
from sklearn import metrics

from drscreen.benchmark import validation
from drscreen.data.lesions import RED_LESIONS
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import lesions, runner

SIZE = 64


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=8, size=SIZE, seed=5), folder, 1, progress=False)
    return read_dataset("synthetic", folder)


def _darkness(images, fov):
    """A map that follows the image: how dark each pixel is (red lesions are dark)."""
    heatmap = (255.0 - tf.reduce_mean(images, axis=-1)) * fov
    return tf.reduce_sum(heatmap, axis=[1, 2]), heatmap


def _ramp(images, fov):
    """A map that ignores the image: the column index."""
    columns = tf.cast(tf.range(SIZE), tf.float32)[None, None, :] * tf.ones_like(fov)
    return tf.zeros(tf.shape(images)[0]), columns * fov


def test_sigma_search_scores_each_sigma_as_the_lesion_module_does(records):
    config = runner.RunnerConfig(SIZE, batch_size=3, perturbation_images=0, progress=False)
    study = validation.study_method(records, _darkness, config, (0.0, 2.0))
    (batch,) = runner.batches(records, runner.RunnerConfig(SIZE, batch_size=8), with_masks=True)
    heatmaps = _darkness(tf.constant(batch["image"]), tf.constant(batch["mask"]))[1].numpy()
    for sigma in (0.0, 2.0):
        matches = []
        for i, masks in enumerate(batch["lesion_masks"]):
            fov = batch["mask"][i] > 0
            red = np.max([masks[t] for t in RED_LESIONS if t in masks], axis=0)
            candidates = lesions.extract_candidates(
                heatmaps[i], fov, lesions.CandidateConfig(sigma=sigma)
            )
            matches.append(lesions.match_candidates(candidates, red, fov))
        expected = lesions.froc_curve(matches).score()
        assert study.froc_by_sigma[sigma]["red_lesions"] == pytest.approx(expected, abs=1e-9)
    best = max(study.froc_by_sigma, key=lambda s: study.froc_by_sigma[s]["all_lesions"])
    assert study.sigma == best and study.target == ("all_lesions",)
    assert study.froc == pytest.approx(study.froc_by_sigma[best]["all_lesions"])
    maxima = [
        lesions.smooth_heatmap(heatmaps[i], batch["mask"][i] > 0, best).max()
        for i in range(len(heatmaps))
    ]
    any_dr = batch["grade"] >= 1
    assert 0 < any_dr.sum() < any_dr.size
    expected = metrics.roc_auc_score(any_dr, maxima)
    assert study.grade_separation == pytest.approx(expected, abs=1e-9)


def test_grade_separation_by_hand():
    """Scores 3, 1 on grade >= 1 and 2, 0 on grade 0: 3 of 4 pairs ordered, AUC 0.75; an
    ungraded image is left out; one side only gives None."""
    scores = {"a": 3.0, "b": 1.0, "c": 2.0, "d": 0.0, "e": 9.0}
    grades = {"a": 2, "b": 1, "c": 0, "d": 0, "e": -1}
    assert validation.grade_separation(scores, grades) == pytest.approx(0.75)
    assert validation.grade_separation({"a": 1.0, "b": 2.0}, grades) is None


def test_sigma_is_chosen_on_the_maps_own_target():
    """A type-specific map's σ maximises its own group's FROC; the all-lesion map's the
    all-lesion FROC; a tie goes to the smaller σ."""
    froc = {
        0.0: {"red_lesions": 0.1, "bright_lesions": 0.5, "all_lesions": 0.3},
        2.0: {"red_lesions": 0.4, "bright_lesions": 0.1, "all_lesions": 0.2},
        4.0: {"red_lesions": 0.4, "bright_lesions": 0.15, "all_lesions": 0.25},
    }
    assert validation.chosen_sigma(froc, ("red_lesions",)) == (2.0, 0.4)
    assert validation.chosen_sigma(froc, ("all_lesions",)) == (0.0, 0.3)
    assert validation.chosen_sigma(froc, ("red_lesions", "bright_lesions")) == (0.0, 0.3)


def test_flip_stability_is_one_for_image_maps_and_minus_one_for_a_fixed_ramp(records):
    """A map computed from the pixels mirrors with the image (correlation 1); a ramp that
    ignores the image comes back reversed (correlation -1 in the symmetric field of view)."""
    config = runner.RunnerConfig(SIZE, batch_size=4, perturbation_images=0, progress=False)
    assert validation.study_method(records, _darkness, config, (0.0,)).flip_stability == (
        pytest.approx(1.0, abs=1e-6)
    )
    ramp = validation.study_method(records, _ramp, config, (0.0,)).flip_stability
    assert ramp < -0.9


def test_candidate_configs_keep_the_rule_and_set_each_sigma():
    base = lesions.CandidateConfig(max_candidates=7)
    studies = {
        "a": validation.MethodValidation(1.0, {}, 0.0, 0.0),
        "b": validation.MethodValidation(4.0, {}, 0.0, 0.0),
    }
    configs = validation.candidate_configs(studies, base)
    assert configs["a"] == lesions.CandidateConfig(max_candidates=7, sigma=1.0)
    assert configs["b"].sigma == 4.0 and configs["b"].rule == base.rule
