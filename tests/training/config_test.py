"""Config validation names the flag at fault; the JSON round trip is lossless."""

import json

import pytest

from drscreen.training.config import (
    DataConfig,
    HeatmapConfig,
    ModelConfig,
    OptimizerConfig,
    StudentConfig,
    TrainConfig,
)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DataConfig(batch_size=0), "--batch_size=0 must be positive"),
        (lambda: DataConfig(data_source="kaggle"), "--data_source='kaggle' is not one of"),
        (lambda: DataConfig(data_source="tfrecords"), "--data_source=tfrecords needs --data_dir"),
        (lambda: ModelConfig(model="nosuch"), "--model='nosuch' is not one of small, oO_netA"),
        (lambda: ModelConfig(progressive_sizes=(224, 112), image_size=112), "must increase"),
        (lambda: ModelConfig(progressive_sizes=(112, 224)), "must end at --image_size=256"),
        (
            lambda: ModelConfig(normalization="zscore"),
            "--normalization='zscore' is not one of oO, graham",
        ),
        (lambda: OptimizerConfig(learning_rate=-1.0), "--learning_rate=-1.0 must be a finite"),
        (lambda: OptimizerConfig(learning_rate=float("inf")), "--learning_rate=inf must be a"),
        (lambda: OptimizerConfig(learning_rate=float("nan")), "--learning_rate=nan must be a"),
        (lambda: OptimizerConfig(l2=float("inf")), "--l2=inf must be a finite number >= 0"),
        (lambda: HeatmapConfig(heatmap_weight=float("inf")), "--heatmap_weight=inf must be a"),
        (lambda: DataConfig(synth_lesion_size=float("inf")), "--synth_lesion_size=inf must be"),
        (lambda: OptimizerConfig(schedule="step"), "--schedule='step' is not one of oO, cosine"),
        (lambda: TrainConfig(model_dir="r", epochs=0), "--epochs=0 must be at least 1"),
        (lambda: TrainConfig(model_dir="r", precision="fp8"), "--precision='fp8'"),
        (lambda: TrainConfig(model_dir="r", init_from="missing.keras"), "no such file"),
        (lambda: StudentConfig(student_teacher_method="cam"), "--student_teacher_method='cam'"),
        (lambda: StudentConfig(student_sigma=-1.0), "--student_sigma=-1.0 must be >= 0"),
        (
            lambda: StudentConfig(student_negative_quantile=0.995),
            "--student_negative_quantile=0.995 and --student_positive_quantile=0.99 must",
        ),
        (lambda: StudentConfig(student_rounds=3), "--student_rounds=3 must be 1 or 2"),
        (lambda: StudentConfig(student_width=0), "--student_width=0 must be >= 1"),
        (
            lambda: TrainConfig(
                model_dir="r",
                model=ModelConfig(image_size=100),
                student=StudentConfig(student_enabled=True, student_depth=2),
            ),
            "--student_depth=2 needs an --image_size that is a multiple of 8, got 100",
        ),
    ],
)
def test_bad_values_raise_naming_the_flag(build, message):
    """Each invalid field gives a ValueError that names its flag."""
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("*", r"\*")):
        build()


def test_write_and_read_back(tmp_path):
    """config.json holds every field and rebuilds an equal config."""
    config = TrainConfig(
        model_dir=str(tmp_path),
        model=ModelConfig(image_size=224, progressive_sizes=(112, 224)),
        optimizer=OptimizerConfig(schedule="cosine"),
        epochs=3,
    )
    path = config.write(tmp_path / "config.json")
    values = json.loads(path.read_text())
    assert values["model"]["progressive_sizes"] == [112, 224]
    assert TrainConfig.from_dict(values) == config


def test_stage_sizes():
    """One stage at image_size, or the progressive sizes."""
    assert ModelConfig(image_size=64).stage_sizes == (64,)
    assert ModelConfig(image_size=64, progressive_sizes=(32, 64)).stage_sizes == (32, 64)


def test_a_run_directory_continues_only_the_same_run(tmp_path):
    """Resuming may change --resume/--verbose; any other setting is refused by name."""
    path = TrainConfig(model_dir=str(tmp_path), epochs=3).write(tmp_path / "config.json")
    TrainConfig(model_dir=str(tmp_path), epochs=3, verbose=2).check_continues(path)
    TrainConfig(model_dir=str(tmp_path / "new"), epochs=3).check_continues(tmp_path / "none")
    changed = TrainConfig(
        model_dir=str(tmp_path), epochs=4, data=DataConfig(batch_size=8), verbose=0
    )
    with pytest.raises(ValueError, match=r"other settings \(data.batch_size, epochs\)"):
        changed.check_continues(path)


def test_a_run_written_before_a_setting_existed_continues_at_its_default(tmp_path):
    """A config.json without the student section resumes with the student off, not on."""
    path = TrainConfig(model_dir=str(tmp_path), epochs=3).write(tmp_path / "config.json")
    values = json.loads(path.read_text())
    del values["student"]
    path.write_text(json.dumps(values))
    TrainConfig(model_dir=str(tmp_path), epochs=3).check_continues(path)
    assert TrainConfig.from_dict(values) == TrainConfig(model_dir=str(tmp_path), epochs=3)
    with_student = TrainConfig(
        model_dir=str(tmp_path), epochs=3, student=StudentConfig(student_enabled=True)
    )
    with pytest.raises(ValueError, match=r"other settings \(student.student_enabled\)"):
        with_student.check_continues(path)
