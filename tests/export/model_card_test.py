"""The model card: built from a run's files, shown by the reports, carried by every export."""

import json
from pathlib import Path

import keras
import onnx
import pytest

from drscreen import cli
from drscreen.data.readers import read_dataset
from drscreen.data.splits import Splits
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.models import build
from drscreen.models.model_card import (
    MODEL_CARD_FILE,
    SYNTHETIC_WARNING,
    UNKNOWN_WARNING,
    card_html,
    card_markdown,
    model_card,
)
from drscreen.models.quality import default_quality_gate
from drscreen.models.runs import RunDirectory
from drscreen.training.config import DataConfig, ModelConfig, TrainConfig

METRICS = {
    "evaluated": {"images": 6},
    "validation": {"images": 6, "referable_dr_auc": 0.71},
    "screening": {
        "referable_dr": {
            "auc": 0.83,
            "auc_ci": [0.61, 0.97],
            "ci_level": 0.95,
            "bootstrap_unit": "patient",
            "operating_points": {
                "0.90": {"threshold": 1.25, "sensitivity": 0.8, "specificity": 0.5},
            },
        }
    },
}


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A run directory as training leaves it (model, config, split, metrics, calibration) on
    a 12-image synthetic benchmark; metrics written by hand."""
    root = tmp_path_factory.mktemp("card")
    data = root / "data"
    write_dataset(SynthConfig.from_preset(n=12, size=64, seed=1), data, 1, progress=False)
    run = RunDirectory(root / "run")
    run.path.mkdir()
    keras.utils.set_random_seed(2)
    build("small", input_size=64, width=4).save(run.model_file)
    TrainConfig(
        model_dir=str(run.path),
        data=DataConfig(data_dir=str(data), val_fraction=0.25, test_fraction=0.25),
        model=ModelConfig(image_size=64),
        epochs=7,
    ).write(run.config_file)
    splits = Splits.by_patient(read_dataset("synthetic", data), 0.25, 0.25, 0, "test", data)
    splits.write(run.splits_file)
    run.metrics_file.write_text(json.dumps(METRICS))
    (run.path / "calibration.json").write_text(json.dumps({"midpoint": 1.4, "scale": 0.3}))
    return run, splits


def test_the_card_of_a_synthetic_run(synthetic_run):
    """Training data, test AUC with its CI, the validation operating point and the gate, as
    the run's files say; the synthetic warning."""
    run, splits = synthetic_run
    card = model_card(str(run.path))
    assert card["warning"] == SYNTHETIC_WARNING
    training = card["training_data"]
    assert training["synthetic"] and training["dataset"] == "synthetic"
    assert training["images"] == {name: len(splits.ids(name)) for name in splits.image_ids}
    assert training["fingerprint"] == splits.fingerprint
    assert card["model_details"]["architecture"] == "small"
    assert card["model_details"]["training"]["epochs"] == 7
    assert card["model_details"]["lesions"] == "the heatmap (no lesion student was trained)"
    (run.lesions_file).write_bytes(b"")
    try:
        with_student = model_card(str(run.path))["model_details"]["lesions"]
    finally:
        run.lesions_file.unlink()
    assert with_student.startswith("the lesion student's per-pixel lesion probability")
    evaluation = card["evaluation"]
    assert evaluation["test_referable_dr_auc"] == {
        "value": 0.83, "ci": [0.61, 0.97], "ci_level": 0.95, "bootstrap_unit": "patient"
    }  # fmt: skip
    assert evaluation["validation_referable_dr_auc"] == 0.71
    assert evaluation["operating_points"]["0.90"] == {
        "threshold": 1.25,
        "chosen_on": "validation sensitivity 0.90",
        "test_sensitivity": 0.8,
        "test_specificity": 0.5,
    }
    assert (card["calibration"]["midpoint"], card["calibration"]["scale"]) == (1.4, 0.3)
    threshold = default_quality_gate().threshold
    assert card["quality_gate"]["ungradable_when"] == f"quality <= {threshold:.6g}"
    assert card["intended_use"]["out_of_scope"] and card["limitations"]
    markdown = "\n".join(card_markdown(card))
    assert markdown.startswith(f"**Warning: {SYNTHETIC_WARNING}.**")
    assert "0.830 (95% CI 0.610–0.970; 6 images)" in markdown
    assert "grade ≥ 1.250 (validation sensitivity 0.90): test sensitivity 0.800" in markdown
    assert card_html(card).startswith(f'<p class="warning">Warning: {SYNTHETIC_WARNING}.</p>')


def test_a_model_file_alone_says_its_data_is_unknown(tmp_path):
    """A bare .keras file: training data unknown, not for clinical use."""
    path = tmp_path / "model.keras"
    build("small", input_size=64, width=4).save(path)
    card = model_card(str(path))
    assert card["warning"] == UNKNOWN_WARNING
    assert card["training_data"] == {"source": "unknown"}


@pytest.mark.xdist_group("shared_export")
def test_the_fixture_export_carries_an_unknown_data_card(exported):
    """An export of a model without its run: the card says its training data is unknown, in
    the version directory, beside the .tflite and .onnx files, in drscreen_export.json and in
    the ONNX metadata."""
    version = Path(exported.path)
    card = json.loads((version / MODEL_CARD_FILE).read_text())
    assert card["warning"] == UNKNOWN_WARNING
    for folder in ("tflite", "onnx"):
        assert json.loads((version / folder / MODEL_CARD_FILE).read_text()) == card
    description = json.loads((version / "drscreen_export.json").read_text())
    assert description["model_card"] == {"file": MODEL_CARD_FILE, "warning": UNKNOWN_WARNING}
    onnx_file = onnx.load(version / "onnx" / "drscreen.onnx")
    assert {p.key: p.value for p in onnx_file.metadata_props}["warning"] == UNKNOWN_WARNING


@pytest.mark.slow
def test_every_export_carries_the_card(synthetic_run, tmp_path):
    """drscreen export of the synthetic run: model_card.json in the version directory (for
    the server's metadata) and beside the .tflite and .onnx files, the warning in
    drscreen_export.json and in the ONNX file's metadata."""
    run, _ = synthetic_run
    out = tmp_path / "export"
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "export", f"--model={run.path}", f"--out={out}",
                  "--tflite_variant=float32"])  # fmt: skip
    assert exit_info.value.code in (0, None)
    version = out / "1"
    card = json.loads((version / MODEL_CARD_FILE).read_text())
    assert card == model_card(str(run.path)) and card["warning"] == SYNTHETIC_WARNING
    for folder in ("tflite", "onnx"):
        assert json.loads((version / folder / MODEL_CARD_FILE).read_text()) == card
    description = json.loads((version / "drscreen_export.json").read_text())
    assert description["model_card"] == {"file": MODEL_CARD_FILE, "warning": SYNTHETIC_WARNING}
    metadata = {
        p.key: p.value for p in onnx.load(version / "onnx" / "drscreen.onnx").metadata_props
    }
    assert metadata["warning"] == SYNTHETIC_WARNING
    assert json.loads(metadata["model_card"]) == card
