"""`evaluate_model` and the stream with photographs the pipeline refuses."""

import keras
import numpy as np
import pytest

from drscreen import models
from drscreen.data.readers import read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import runner
from drscreen.evaluation.model_evaluation import evaluate_model

SIZE = 64


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=8, size=SIZE, seed=5), folder, 1, progress=False)
    return read_dataset("synthetic", folder)


@pytest.fixture(scope="module")
def refused(tmp_path_factory):
    """Two photographs every command refuses: an empty file and a text file."""
    folder = tmp_path_factory.mktemp("refused")
    (folder / "empty.jpeg").write_bytes(b"")
    (folder / "text.jpeg").write_bytes(b"not an image " * 10)
    return [FundusRecord(name, str(folder / f"{name}.jpeg"), 2, name) for name in ("empty", "text")]


@pytest.fixture(scope="module")
def score_fn():
    keras.utils.set_random_seed(3)
    return runner.score_function(models.build("small", input_size=SIZE, width=4))


def _config(**overrides) -> runner.RunnerConfig:
    return runner.RunnerConfig(
        SIZE, batch_size=3, perturbation_images=0, progress=False, **overrides
    )


def test_stream_scores_the_usable_photographs_and_lists_the_others(records, refused, score_fn):
    """Refused photographs mixed in change nothing for the others and are listed in order."""
    mixed = [records[0], refused[0], *records[1:5], refused[1], *records[5:]]
    result = runner.run(mixed, score_fn, {}, _config())
    alone = runner.run(records, score_fn, {}, _config())
    ours, theirs = result.screening.arrays(), alone.screening.arrays()
    np.testing.assert_array_equal(ours["image_ids"], theirs["image_ids"])
    np.testing.assert_allclose(ours["predictions"], theirs["predictions"], rtol=1e-5, atol=1e-6)
    assert [name for name, _ in result.skipped] == [r.image_path for r in refused]
    assert [reason for _, reason in result.skipped] == ["empty file", "not a decodable image"]


def test_every_evaluated_photograph_refused_is_a_clear_error(records, refused, score_fn):
    """Nothing to evaluate: a ValueError naming the files and reasons, not an empty report."""
    with pytest.raises(ValueError, match=r"none of the 2 photographs.*empty.jpeg: empty file"):
        evaluate_model(score_fn, refused, records, _config(), n_bootstrap=10)


def test_every_validation_photograph_refused_leaves_thresholds_unchosen(records, refused, score_fn):
    """No usable validation image: evaluated as without validation images, refusals listed."""
    metrics = evaluate_model(score_fn, records, refused, _config(), n_bootstrap=10).metrics
    assert metrics["validation"]["images"] == 0
    assert [s["reason"] for s in metrics["validation"]["skipped"]] == [
        "empty file",
        "not a decodable image",
    ]
    assert (metrics["evaluated"]["images"], metrics["evaluated"]["skipped"]) == (len(records), [])
    assert metrics["screening"] == {"skipped": "no validation data to choose thresholds on"}
