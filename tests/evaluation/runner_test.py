"""Tests of the evaluation stream: streamed metrics equal metrics computed in one go."""

import dataclasses

import keras
import numpy as np
import pytest
import tensorflow as tf

from drscreen import models
from drscreen.data import fundus, image_io, pipeline
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import heatmap_quality, lesions, runner, screening, streaming
from drscreen.heatmaps import compute

SIZE = 64


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=10, size=SIZE, seed=3), folder, 1, progress=False)
    return read_dataset("synthetic", folder)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(7)
    return models.build("small", input_size=SIZE, width=4)


def _all_at_once(records, config):
    """Every image, FOV and mask set in one batch."""
    one_batch = dataclasses.replace(config, batch_size=len(records))
    (batch,) = list(runner.batches(records, one_batch, with_masks=True))
    return batch


def test_streamed_metrics_equal_one_go(records, model):
    """Batches of 4 give the metrics that the whole set's arrays give at once."""
    config = runner.RunnerConfig(SIZE, batch_size=4, perturbation_images=3, progress=False)
    score_fn, heatmap_fns = runner.keras_functions(model, ("sensitivity",))
    result = runner.run(records, score_fn, heatmap_fns, config)
    batch = _all_at_once(records, config)
    grades, heatmaps = compute(model, batch["image"], "sensitivity", fov_masks=batch["mask"])
    heatmaps = heatmaps.numpy()

    arrays = result.screening.arrays()
    assert list(arrays["image_ids"]) == [r.image_id for r in records]
    np.testing.assert_array_equal(arrays["grades"], [r.grade for r in records])
    np.testing.assert_allclose(arrays["predictions"], grades.numpy(), rtol=1e-5, atol=1e-6)

    streamed = result.methods["sensitivity"].lesion_metrics()
    for target, members in (("hemorrhage", ("hemorrhage",)), ("red_lesions", lesions_red())):
        matches, scores, present, masses = [], [], [], []
        for i in range(len(records)):
            mask = np.logical_or.reduce([batch["lesion_masks"][i][m] > 0 for m in members])
            fov = batch["mask"][i] > 0
            candidates = lesions.extract_candidates(heatmaps[i], fov)
            matches.append(lesions.match_candidates(candidates, mask, fov))
            scores.append(heatmaps[i][fov].max())
            present.append(bool((mask & fov).any()))
            if present[-1]:
                masses.append(heatmap_quality.relevance_mass(heatmaps[i], mask, fov))
        curve = lesions.froc_curve(matches)
        entry = streamed[target]
        assert entry["lesions"] == curve.lesions
        assert entry["froc_score"] == pytest.approx(curve.score(), abs=1e-9)
        np.testing.assert_allclose(
            entry["froc"]["false_positives_per_image"], curve.false_positives_per_image
        )
        assert entry["image_auc"] == pytest.approx(screening.roc_auc(present, scores), rel=1e-6)
        assert entry["relevance_mass"] == pytest.approx(np.mean(masses), rel=1e-4)

    curves = heatmap_quality.perturbation_curves(
        batch["image"][:3], heatmaps[:3], lambda x: model(x, training=False)[:, 0].numpy()
    )
    perturbation = result.methods["sensitivity"].perturbation_metrics()
    assert perturbation["images"] == 3
    assert perturbation["deletion_auc"] == pytest.approx(curves.deletion_auc.mean(), rel=1e-4)
    assert perturbation["insertion_auc"] == pytest.approx(curves.insertion_auc.mean(), rel=1e-4)
    assert result.methods["sensitivity"].seconds_per_image > 0


def lesions_red():
    return streaming.DEFAULT_GROUPS["red_lesions"]


def test_masks_are_cropped_like_their_images(records):
    """Each lesion mask goes through the crop box of its own photograph."""
    config = runner.RunnerConfig(SIZE, batch_size=len(records), progress=False)
    batch = _all_at_once(records, config)
    for i in (0, len(records) - 1):
        record = records[i]
        image = tf.io.decode_image(tf.io.read_file(record.image_path), channels=3)
        box = fundus.field_of_view_box(fundus.field_of_view_mask(image))
        original = image_io.load_mask(record.lesion_masks["hemorrhage"]).astype(np.uint8)
        expected = fundus.crop_square(original[..., None], box, SIZE)[..., 0].numpy() > 0.5
        np.testing.assert_array_equal(batch["lesion_masks"][i]["hemorrhage"] > 0, expected)
        np.testing.assert_allclose(
            batch["image"][i], fundus.crop_to_field_of_view(image, SIZE)[0].numpy(), atol=0.5
        )


def test_batches_with_masks_equal_the_evaluation_pipeline(records):
    """Decoding once for image, FOV and masks gives `dataset_for_evaluation`'s batches."""
    config = runner.RunnerConfig(SIZE, batch_size=4, progress=False)
    settings = pipeline.PipelineConfig(image_size=SIZE, batch_size=4, augment=None, seed=0)
    expected = list(pipeline.dataset_for_evaluation(list(records), settings))
    streamed = list(runner.batches(records, config, with_masks=True))
    assert len(streamed) == len(expected) == 3
    for ours, theirs in zip(streamed, expected, strict=True):
        for key in ("image", "mask", "grade"):
            np.testing.assert_array_equal(ours[key], theirs[key].numpy())
        for key in ("image_id", "patient_id", "eye"):
            np.testing.assert_array_equal(ours[key], theirs[key].numpy().astype(str))
        assert len(ours["lesion_masks"]) == ours["image"].shape[0]


def test_without_heatmaps_the_stream_only_scores(records, model):
    """No heatmap method: predictions from the score function, no lesion accumulators."""
    config = runner.RunnerConfig(SIZE, batch_size=4, progress=False)
    result = runner.run(records, runner.score_function(model), {}, config)
    batch = _all_at_once(records, config)
    expected = model(tf.constant(batch["image"]), training=False)[:, 0].numpy()
    np.testing.assert_allclose(result.screening.arrays()["predictions"], expected, rtol=1e-5)
    assert result.methods == {} and not result.has_lesion_masks


def test_each_method_can_have_its_own_candidates(records, model):
    """method_candidates gives a method its own rule: the same heatmaps under the components
    rule score as `lesions` computes them by hand, the other method keeps `candidates`."""
    components = lesions.CandidateConfig("components")
    config = runner.RunnerConfig(
        SIZE,
        batch_size=4,
        perturbation_images=0,
        method_candidates={"as_components": components},
        progress=False,
    )
    score_fn, (heatmap_fn,) = (
        runner.score_function(model),
        [runner.heatmap_function(model, "sensitivity")],
    )
    result = runner.run(
        records, score_fn, {"as_peaks": heatmap_fn, "as_components": heatmap_fn}, config
    )
    batch = _all_at_once(records, config)
    heatmaps = compute(model, batch["image"], fov_masks=batch["mask"])[1].numpy()
    scores = {}
    for method, rule in (("as_peaks", config.candidates), ("as_components", components)):
        matches = []
        for i in range(len(records)):
            fov = batch["mask"][i] > 0
            candidates = lesions.extract_candidates(heatmaps[i], fov, rule)
            matches.append(
                lesions.match_candidates(candidates, batch["lesion_masks"][i]["hemorrhage"], fov)
            )
        expected = lesions.froc_curve(matches).score()
        scores[method] = result.methods[method].lesion_metrics()["hemorrhage"]["froc_score"]
        assert scores[method] == pytest.approx(expected, abs=1e-9), method
    assert scores["as_peaks"] != scores["as_components"]  # the two rules do differ here
