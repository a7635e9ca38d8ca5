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
from drscreen.models.calibration import Calibration

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


def test_screening_metrics_skip_without_grades():
    """Ungraded images (-1) give a skipped image-level section that says why."""
    arrays = {
        "grades": np.full(4, -1),
        "predictions": np.zeros(4),
        "image_ids": np.array(list("abcd")),
        "patient_ids": np.array(list("abcd")),
    }
    assert runner.screening_metrics(arrays, None) == {
        "screening": {"skipped": "the dataset has no grades"}
    }


def test_screening_metrics_use_validation_thresholds():
    """Operating points come from validation; patient level appears with paired eyes."""
    arrays = {
        "grades": np.array([0, 2, 1, 1, 0, 0]),
        "predictions": np.array([0.1, 2.2, 1.2, 1.0, 0.4, 0.2]),
        "image_ids": np.array(["1l", "1r", "2l", "2r", "3l", "3r"]),
        "patient_ids": np.array(["1", "1", "2", "2", "3", "3"]),
    }
    validation = {**arrays, "predictions": arrays["predictions"] + 1.0}
    result = runner.screening_metrics(arrays, validation, n_bootstrap=20)
    assert set(result) == {"screening", "calibration", "patients"}
    point = result["screening"]["referable_dr"]["operating_points"]["0.90"]
    assert point["threshold"] == pytest.approx(3.2)  # the referable image's validation ŷ
    assert result["screening"]["referable_dr"]["auc"] == 1.0
    assert result["patients"]["referable_dr"]["auc_max"] == 1.0
    all_referable = {**arrays, "grades": np.array([0, 2, 2, 1, 3, 0])}
    skipped = runner.screening_metrics(all_referable, validation, n_bootstrap=20)["patients"]
    assert "all positive for referable_dr" in skipped["skipped"]


def test_screening_metrics_score_the_given_calibration():
    """The calibration section bins sigmoid((ŷ - midpoint) / scale) and records both."""
    arrays = {
        "grades": np.array([0, 2, 1, 3]),
        "predictions": np.array([0.0, 2.0, 1.0, 3.0]),
        "image_ids": np.array(["a", "b", "c", "d"]),
        "patient_ids": np.array(["a", "b", "c", "d"]),
    }
    result = runner.screening_metrics(arrays, arrays, 10, Calibration(midpoint=1.0, scale=1e-3))
    section = result["calibration"]
    assert (section["midpoint"], section["scale"]) == (1.0, 1e-3)
    assert section["counts"] == [1, 0, 0, 0, 0, 1, 0, 0, 0, 2]  # p = 0, 1, 0.5, 1
    assert section["expected_calibration_error"] == pytest.approx(0.5 / 4)  # only p = 0.5 misses


def test_missing_model_names_the_path(tmp_path):
    """A missing model or a run directory without best.keras is a clear error."""
    with pytest.raises(FileNotFoundError, match="nowhere.keras"):
        runner.load_model(str(tmp_path / "nowhere.keras"))
    with pytest.raises(FileNotFoundError, match="best.keras"):
        runner.load_model(str(tmp_path))


def test_config_rejects_unknown_methods():
    """An unknown heatmap method is named in the error."""
    with pytest.raises(ValueError, match="occlusion"):
        runner.EvaluationConfig(model="m", data="d", out="o", methods=("occlusion",))
