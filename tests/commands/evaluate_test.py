"""`drscreen evaluate` end to end on a tiny synthetic set and an untrained model."""

import json
import shutil

import cv2
import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from drscreen import cli, models
from drscreen.commands.evaluate import EvaluationConfig
from drscreen.data import pipeline
from drscreen.data.gradability import gradability_features
from drscreen.data.image_io import load_rgb
from drscreen.data.readers import read_dataset
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import report
from drscreen.evaluation.screening import threshold_for_sensitivity
from drscreen.models.calibration import Calibration
from drscreen.models.quality import default_quality_gate, threshold_for_catching
from tests.reference import grades_and_predictions

SIZE = 64


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synthetic")
    write_dataset(SynthConfig.from_preset(n=12, size=SIZE, seed=3), folder, 1, progress=False)
    return str(folder)


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    keras.utils.set_random_seed(7)
    path = tmp_path_factory.mktemp("model") / "small.keras"
    models.build("small", input_size=SIZE, width=4).save(path)
    return str(path)


def _all_of(data_dir: str) -> tuple[str, ...]:
    """Evaluate all of ``data_dir``, thresholds on it too, without the costly extras."""
    return (
        f"--data={data_dir}",
        f"--validation_data={data_dir}",
        "--split=all",
        "--gallery=0",
        "--perturbation_images=0",
        "--lesion_metrics=off",
        "--n_bootstrap=10",
    )


def _evaluate(*arguments: str) -> int:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["drscreen", "evaluate", *arguments])
    return exit_info.value.code


def test_writes_every_section_and_figure(data_dir, model_path, tmp_path):
    """metrics.json holds every section, the report links the PNGs, which are images."""
    out = tmp_path / "eval"
    code = _evaluate(
        f"--model={model_path}",
        f"--data={data_dir}",
        f"--validation_data={data_dir}",
        "--split=all",
        f"--out={out}",
        "--batch_size=5",
        "--gallery=4",
        "--perturbation_images=2",
        "--n_bootstrap=50",
    )
    assert code in (0, None)
    written = json.loads((out / "metrics.json").read_text())
    assert written["context"]["dataset"].startswith("synthetic")
    assert written["context"]["model"] == model_path
    assert written["context"]["command"].startswith("drscreen evaluate --model=")
    metrics = written["metrics"]
    assert {"screening", "calibration", "patients", "methods", "evaluated", "validation"} <= set(
        metrics
    )
    assert metrics["evaluated"]["images"] == 12
    assert metrics["calibration"]["source"] == "default"
    assert (metrics["calibration"]["midpoint"], metrics["calibration"]["scale"]) == (1.5, 0.25)
    assert set(metrics["screening"]["referable_dr"]["operating_points"]) == {"0.90", "0.95"}
    assert "quadratic_weighted_kappa" in metrics["screening"]["kappa"]
    sensitivity = metrics["methods"]["sensitivity"]
    assert "froc_score" in sensitivity["lesions"]["red_lesions"]
    assert sensitivity["perturbation"]["images"] == 2
    assert 0.0 <= sensitivity["relevance_mass/all_lesions"] <= 1.0
    (row,) = written["comparison"]
    assert set(row) == {key for key, _ in report.COMPARISON_COLUMNS}
    report_text = (out / "report.md").read_text()
    for name in ("roc.png", "calibration.png", "froc.png", "gallery.png", "referral.png"):
        assert f"]({name})" in report_text
        image = cv2.imread(str(out / name))
        assert image is not None and min(image.shape[:2]) > 100
    # each gallery case also on its photograph: the plain half is one of the data's 64 px
    # files, enlarged 8x pixel by pixel to a readable 512 px
    photographs = [
        load_rgb(r.image_path).repeat(8, axis=0).repeat(8, axis=1)
        for r in read_dataset("synthetic", data_dir)
    ]
    for number in range(1, 5):
        name = f"gallery/case_{number:02d}.png"
        assert f"]({name})" in report_text
        panel = cv2.cvtColor(cv2.imread(str(out / name)), cv2.COLOR_BGR2RGB)
        plain = panel[:, :512]
        assert any(np.array_equal(plain, photograph) for photograph in photographs)
        assert panel.shape[1] > 2 * 512  # photograph | overlay | colour scale


def test_dataset_without_masks_rejects_lesion_metrics(data_dir, model_path, tmp_path):
    """Read as Kaggle (no masks), a required lesion evaluation is a clear error."""
    with pytest.raises(SystemExit, match="drscreen evaluate: .*no lesion masks"):
        cli.main(
            [
                "drscreen",
                "evaluate",
                f"--model={model_path}",
                f"--data={data_dir}",
                "--dataset=kaggle",
                f"--out={tmp_path / 'eval'}",
                "--lesion_metrics=required",
            ]
        )


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--methods=occlusion", "occlusion"), ("--batch_size=0", "batch_size")],
)
def test_bad_flags_are_usage_errors(data_dir, model_path, tmp_path, flag, message, capsys):
    """A bad flag stops before any work with a message naming it."""
    code = _evaluate(
        f"--model={model_path}", f"--data={data_dir}", f"--out={tmp_path / 'eval'}", flag
    )
    assert code == 1
    assert message in capsys.readouterr().err


def test_config_rejects_unknown_methods():
    """An unknown heatmap method is named in the error."""
    with pytest.raises(ValueError, match="occlusion"):
        EvaluationConfig(model="m", data="d", out="o", methods=("occlusion",))


def test_missing_model_is_a_clear_error(data_dir, tmp_path):
    """A model path that does not exist is named in the error."""
    with pytest.raises(SystemExit, match="drscreen evaluate: .*absent.keras"):
        cli.main(
            [
                "drscreen",
                "evaluate",
                f"--model={tmp_path / 'absent.keras'}",
                f"--data={data_dir}",
                f"--out={tmp_path / 'eval'}",
            ]
        )


@pytest.fixture(scope="module")
def screening_mix(tmp_path_factory) -> str:
    """20 photographs, 10 of them ungradable; the 10 gradable ones hold grades 0 to 3, both
    classes of both tasks (with grades 1 to 4 only, the referable-DR figures on gradable
    images are skipped: any-DR has one class)."""
    data = tmp_path_factory.mktemp("screening")
    synth = SynthConfig.from_preset("screening", n=20, size=SIZE, seed=1, ungradable_fraction=0.4)
    write_dataset(synth, data, 1, progress=False)
    return str(data)


@pytest.fixture(scope="module")
def models_on_the_mix(model_path, screening_mix, tmp_path_factory) -> dict:
    """The plain model as a run directory whose calibration.json puts the midpoint at the
    median of its ŷ on the mix, a second (heatmap-aware) model, and each one's ŷ on the
    mix computed here."""
    records = read_dataset("synthetic", screening_mix)
    run_dir = tmp_path_factory.mktemp("run")
    shutil.copyfile(model_path, run_dir / "best.keras")
    keras.utils.set_random_seed(11)
    aware_path = str(run_dir.parent / "aware.keras")
    models.build("small", input_size=SIZE, width=4).save(aware_path)
    predicted = {
        "plain": grades_and_predictions(model_path, records, SIZE),
        "aware": grades_and_predictions(aware_path, records, SIZE),
    }
    plain = np.array([p for _, p in predicted["plain"].values()])
    calibration = Calibration(float(np.median(plain)), float(np.ptp(plain) / 4))
    (run_dir / "calibration.json").write_text(json.dumps(calibration.to_dict()))
    return {
        "run": run_dir,
        "aware": aware_path,
        "calibration": calibration,
        "records": records,
        "predicted": predicted,
    }


@pytest.fixture(scope="module")
def mix_metrics(models_on_the_mix, screening_mix, tmp_path_factory) -> dict:
    """One `drscreen evaluate` of the run and the heatmap-aware model on all of the mix:
    its metrics.json, and the report in ``out``."""
    out = tmp_path_factory.mktemp("eval")
    code = _evaluate(
        f"--model={models_on_the_mix['run']}",
        f"--heatmap_aware_model={models_on_the_mix['aware']}",
        f"--out={out}",
        *_all_of(screening_mix),
    )
    assert code in (0, None)
    return {"metrics": json.loads((out / "metrics.json").read_text())["metrics"], "out": out}


def test_run_calibration_scores_the_referable_probability(models_on_the_mix, mix_metrics):
    """A run directory's calibration.json is the calibration evaluated, and is reported: its
    reliability counts are numpy's histogram of that calibration's probabilities of the ŷ
    computed here."""
    section = mix_metrics["metrics"]["calibration"]
    calibration = models_on_the_mix["calibration"]
    assert section["source"] == str(models_on_the_mix["run"] / "calibration.json")
    assert (section["midpoint"], section["scale"]) == (calibration.midpoint, calibration.scale)
    ids = [r.image_id for r in models_on_the_mix["records"]]
    grades = np.array([models_on_the_mix["predicted"]["plain"][i][1] for i in ids])
    probabilities = 1 / (1 + np.exp(-(grades - calibration.midpoint) / calibration.scale))
    expected, _ = np.histogram(probabilities, bins=np.linspace(0, 1, 11))
    assert section["counts"] == expected.tolist()
    assert sum(count > 0 for count in expected) >= 3  # the probabilities spread over bins


def test_heatmap_aware_model_is_tuned_on_its_own_validation_scores(models_on_the_mix, mix_metrics):
    """The second model's operating point is the threshold of ITS validation ŷ, not the plain
    model's (which it was before)."""
    metrics = mix_metrics["metrics"]
    thresholds = {}
    for key, predicted in models_on_the_mix["predicted"].items():
        grades, predictions = np.array(list(predicted.values())).T
        thresholds[key] = threshold_for_sensitivity(grades >= 2, predictions, 0.90)
    assert thresholds["aware"] != pytest.approx(thresholds["plain"])

    def point(section):
        return section["screening"]["referable_dr"]["operating_points"]["0.90"]["threshold"]

    assert point(metrics) == pytest.approx(thresholds["plain"], rel=1e-5)
    assert point(metrics["heatmap_aware_model"]) == pytest.approx(thresholds["aware"], rel=1e-5)
    assert metrics["heatmap_aware_model"]["validation"]["images"] == 20


def test_gradability_and_referral_sections_on_a_screening_mix(models_on_the_mix, mix_metrics):
    """On a mix with ungradable photographs: the detection AUC equals scikit-learn's on the
    shipped gate's quality computed here, the flagged share matches the threshold, the
    referable-DR AUC on the gradable images is scikit-learn's on their ŷ, and the referral
    curve starts from every gradable image."""
    metrics = mix_metrics["metrics"]
    records = models_on_the_mix["records"]
    batches = pipeline.dataset_for_evaluation(
        records, pipeline.PipelineConfig(image_size=SIZE, augment=None)
    )
    ids, quality = [], []
    for batch in batches:
        ids += [i.decode() for i in batch["image_id"].numpy()]
        features = gradability_features(batch["image"], batch["mask"])
        quality.append(default_quality_gate().quality(features.numpy()))
    quality = np.concatenate(quality)
    gradable = {r.image_id: r.gradable for r in records}
    ungradable = np.array([not gradable[i] for i in ids])
    section = metrics["gradability"]
    assert ungradable.sum() == 10
    assert section["detection"]["auc"] == pytest.approx(
        roc_auc_score(ungradable, 1 - quality), abs=1e-6
    )
    # float32 features: the evaluator's graph and this eager pass round differently (~1e-6)
    assert section["threshold"] == pytest.approx(
        threshold_for_catching(quality, ~ungradable), rel=1e-5
    )
    at_threshold = section["threshold"] * (1 + 1e-5)  # the threshold is one image's quality
    assert section["flagged_fraction"] == pytest.approx(np.mean(quality <= at_threshold))
    plain = models_on_the_mix["predicted"]["plain"]
    grades, predictions = np.array([plain[i] for i in ids if gradable[i]]).T
    on_gradable = section["referable_dr_on_gradable"]["referable_dr"]
    assert on_gradable["auc"] == pytest.approx(roc_auc_score(grades >= 2, predictions), abs=1e-9)
    referral = metrics["referral"]
    assert referral["images"] == int((~ungradable).sum()) == 10
    assert referral["auc_plain"] == pytest.approx(on_gradable["auc"], abs=1e-9)
    curve = referral["curves"]["tta_spread"]
    assert curve["retained_images"][0] == 10
    assert curve["referred_fraction"][-1] == pytest.approx(0.5)
    report_text = (mix_metrics["out"] / "report.md").read_text()
    assert "Ungradable-detection AUC" in report_text
