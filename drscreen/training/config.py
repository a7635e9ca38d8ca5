"""The training configuration: frozen dataclasses, validated once, written next to the run.

Every field is a flag of ``scripts/train.py`` of the same name, generated from the field
(`drscreen.cli.config_flags`: its ``help`` and ``choices`` metadata, its default), so a
validation error names the flag to fix and a new field needs one edit, here. Library code
receives a `TrainConfig` and never reads flags.
"""

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from drscreen.heatmaps import METHODS
from drscreen.models import EVIDENCE_MODELS, MODELS, NORMALIZATIONS
from drscreen.models.segmentation import min_side
from drscreen.training.penalties import PENALTIES

DATA_SOURCES = ("synthetic", "tfrecords")
SYNTH_DIFFICULTIES = ("easy", "standard", "hard")
SCHEDULES = ("oO", "cosine", "constant")
PRECISIONS = ("auto", "float32", "mixed_float16", "mixed_bfloat16")
DISTRIBUTIONS = ("default", "mirrored", "multi_worker")
MONITORS = ("val_loss", "val_task_loss", "val_referable_auc")
AUGMENTATIONS = ("oO", "dihedral", "none")
OPTIMIZERS = ("sgd", "adam")


def _field(default: Any, help: str, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with the help text (and choices) of its flag in ``scripts/train.py``."""
    metadata = {"help": help} if choices is None else {"help": help, "choices": choices}
    return dataclasses.field(default=default, metadata=metadata)


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _check_positive(name: str, value: float) -> None:
    _check(math.isfinite(value) and value > 0, f"--{name}={value} must be a finite number > 0")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    _check(value in choices, f"--{name}={value!r} is not one of {', '.join(choices)}")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the images come from and how they are batched.

    Attributes
    ----------
    data_source:
        ``"synthetic"``: the synthetic benchmark in ``data_dir``, generated there first when
        the folder holds no ``trainLabels.csv`` (``data_dir`` empty: ``RUN_DIR/data``).
        ``"tfrecords"``: the output of ``drscreen prepare`` in ``data_dir``.
    synth_n, synth_size, synth_difficulty, synth_seed:
        The synthetic benchmark generated when missing (images, pixels, preset, seed).
    batch_size:
        Global batch size (split over replicas when distributed).
    synth_lesion_size:
        Multiplier on the synthetic lesions' radii (the preset's ``lesion_size``; 1 keeps it).
    augmentation:
        Training augmentation: ``"oO"`` (zoom, rotation, translation, flip, PCA colour noise),
        ``"dihedral"`` (flips and quarter turns: every pixel kept exactly) or ``"none"``.
    class_rebalancing:
        o_O's decaying class-resampling weights (``drscreen.data.pipeline``).
    cache:
        Cache decoded images in memory after the first epoch.
    shuffled_grades:
        The sanity control of Adebayo et al. (2018): the training split's grades are permuted
        among its images (seeded by the run's seed), so the model can learn no grade-related
        feature; validation and test keep their true grades.
    val_fraction, test_fraction:
        Patient-level split fractions for the synthetic benchmark.
    """

    data_source: str = _field("synthetic", "Where images come from.", DATA_SOURCES)
    data_dir: str = _field("", "Synthetic benchmark or `drscreen prepare` folder.")
    synth_n: int = _field(600, "Synthetic images generated when missing.")
    synth_size: int = _field(256, "Side of the generated synthetic images.")
    synth_difficulty: str = _field("standard", "Preset.", SYNTH_DIFFICULTIES)
    synth_seed: int = _field(0, "Seed of the synthetic benchmark.")
    synth_lesion_size: float = _field(1.0, "Multiplier on synthetic lesion radii.")
    batch_size: int = _field(32, "Global batch size.")
    augmentation: str = _field("oO", "Training augmentation.", AUGMENTATIONS)
    class_rebalancing: bool = _field(True, "o_O decaying class weights.")
    cache: bool = _field(True, "Cache decoded images in memory.")
    shuffled_grades: bool = _field(
        False, "Sanity control: train on the training split's grades permuted (seeded)."
    )
    val_fraction: float = _field(0.15, "Validation share of patients.")
    test_fraction: float = _field(0.15, "Test share of patients.")

    def __post_init__(self):
        _check_choice("data_source", self.data_source, DATA_SOURCES)
        _check_choice("synth_difficulty", self.synth_difficulty, SYNTH_DIFFICULTIES)
        _check_choice("augmentation", self.augmentation, AUGMENTATIONS)
        _check_positive("synth_lesion_size", self.synth_lesion_size)
        if self.data_source == "tfrecords":
            _check(bool(self.data_dir), "--data_source=tfrecords needs --data_dir")
            _check(
                not self.shuffled_grades,
                "--shuffled_grades needs --data_source=synthetic (records whose grades can be "
                "permuted)",
            )
        _check(self.synth_n >= 8, f"--synth_n={self.synth_n} must be at least 8")
        _check(self.synth_size >= 64, f"--synth_size={self.synth_size} must be at least 64")
        _check(self.batch_size >= 1, f"--batch_size={self.batch_size} must be positive")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            _check(0.0 < value < 0.5, f"--{name}={value} must be in (0, 0.5)")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which network of `drscreen.models` to train.

    Attributes
    ----------
    model:
        A name of ``drscreen.models.build`` (``small``, ``oO_netA``, ``oO_netB``, ``evidence``).
    image_size:
        Input size in pixels of the (last) training stage.
    width:
        Base number of filters; 0 keeps the model's default.
    progressive_sizes:
        Input sizes of the progressive-resizing stages, increasing and ending at
        ``image_size`` (e.g. 112, 224, 448); empty trains one stage at ``image_size``.
    normalization:
        In-model input normalisation (``drscreen.models.NORMALIZATIONS``): ``"oO"``, o_O's
        per-channel z-score; ``"graham"``, Graham's local-average subtraction (every stage).
    evidence_l1:
        Weight of the sparsity term on the evidence map added to the training loss
        (`drscreen.models.evidence.evidence_sparsity`), for the networks of
        ``drscreen.models.EVIDENCE_MODELS``; 0: off. A term of training only: the saved and
        exported model is the same network either way.
    """

    model: str = _field("small", "A network of drscreen.models.build.", tuple(MODELS))
    image_size: int = _field(256, "Input size (of the last stage).")
    width: int = _field(0, "Base filters; 0 keeps the model default.")
    progressive_sizes: tuple[int, ...] = _field(
        (), "Stage sizes, e.g. 112,224,448; empty: one stage."
    )
    normalization: str = _field("oO", "In-model input normalisation.", NORMALIZATIONS)
    evidence_l1: float = _field(0.0, "Weight of the evidence map's L1 sparsity term (0: off).")

    def __post_init__(self):
        _check_choice("model", self.model, tuple(MODELS))
        _check_choice("normalization", self.normalization, NORMALIZATIONS)
        _check(self.evidence_l1 >= 0, f"--evidence_l1={self.evidence_l1} must be >= 0")
        _check(
            self.evidence_l1 == 0 or self.model in EVIDENCE_MODELS,
            f"--evidence_l1 needs a network with an evidence map ({', '.join(EVIDENCE_MODELS)}); "
            f"--model={self.model} has none",
        )
        _check(self.image_size >= 16, f"--image_size={self.image_size} must be at least 16")
        _check(self.width >= 0, f"--width={self.width} must be >= 0 (0: model default)")
        sizes = self.progressive_sizes
        if sizes:
            _check(
                all(a < b for a, b in zip(sizes, sizes[1:], strict=False)),
                f"--progressive_sizes={','.join(map(str, sizes))} must increase",
            )
            _check(
                sizes[-1] == self.image_size,
                f"--progressive_sizes must end at --image_size={self.image_size}, got {sizes[-1]}",
            )

    @property
    def stage_sizes(self) -> tuple[int, ...]:
        """Input size of each training stage, in order."""
        return self.progressive_sizes or (self.image_size,)


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimiser: o_O's SGD with Nesterov momentum (or Adam), schedule, L2 on kernels.

    Attributes
    ----------
    optimizer:
        ``"sgd"``: SGD with Nesterov momentum (o_O); ``"adam"``: Adam (momentum unused).
    learning_rate:
        Initial learning rate (o_O: 0.003).
    schedule:
        ``"oO"``: divide by 10 at 150/250 and again at 220/250 of the epochs of a stage;
        ``"cosine"``: linear warm-up over the first epoch, then cosine decay to 0 at the end
        of the stage (`drscreen.training.schedules`); ``"constant"``.
    momentum:
        Nesterov momentum (o_O: 0.9).
    l2:
        Coefficient of ``sum(w**2)`` over the kernels, added to the loss (o_O: 5e-4).
    """

    optimizer: str = _field("sgd", "sgd (Nesterov momentum) or adam.", OPTIMIZERS)
    learning_rate: float = _field(0.003, "Initial learning rate.")
    schedule: str = _field("oO", "Learning-rate schedule.", SCHEDULES)
    momentum: float = _field(0.9, "Nesterov momentum.")
    l2: float = _field(5e-4, "L2 coefficient on kernels.")

    def __post_init__(self):
        _check_positive("learning_rate", self.learning_rate)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check(0 <= self.momentum < 1, f"--momentum={self.momentum} must be in [0, 1)")
        _check(0 <= self.l2 < math.inf, f"--l2={self.l2} must be a finite number >= 0")


@dataclasses.dataclass(frozen=True)
class HeatmapConfig:
    """Heatmap-aware training: loss += heatmap_weight * penalty(FOV-masked heatmap).

    Attributes
    ----------
    heatmap_weight:
        λ; 0 trains the plain o_O objective (no second backward pass).
    heatmap_penalty:
        A name of `drscreen.training.penalties.PENALTIES`.
    """

    heatmap_weight: float = _field(0.0, "λ of the heatmap penalty (0: off).")
    heatmap_penalty: str = _field("sparsity", "sparsity, total_variation, entropy.")

    def __post_init__(self):
        _check(
            0 <= self.heatmap_weight < math.inf,
            f"--heatmap_weight={self.heatmap_weight} must be a finite number >= 0",
        )
        _check_choice("heatmap_penalty", self.heatmap_penalty, tuple(PENALTIES))


@dataclasses.dataclass(frozen=True)
class StudentConfig:
    """The lesion student (`drscreen.training.student`), trained after the screening model.

    Attributes
    ----------
    student_enabled:
        Train the student and write ``lesions.keras`` (its map becomes the exports'
        ``lesions`` output).
    student_teacher_method:
        The screening model's heatmap the pseudo-masks are drawn from (a method of
        `drscreen.heatmaps.METHODS`).
    student_sigma:
        Gaussian smoothing (px, at the model's input size) of the teacher map inside the
        field of view, before the thresholds.
    student_positive_quantile, student_negative_quantile:
        Quantiles, over the grade-0 training images, of each image's largest smoothed
        teacher value: pixels of graded-DR images at or above the first are lesion, below
        the second background, in between ignored.
    student_width, student_depth:
        Of `drscreen.models.segmentation.segmentation_net`.
    student_epochs, student_batch_size, student_learning_rate:
        Adam training of each round.
    student_rounds:
        1, or 2: a second student trained on pseudo-masks drawn from the first one's map.
    """

    student_enabled: bool = _field(False, "Train the lesion student after the model.")
    student_teacher_method: str = _field(
        "guided_backprop", "Heatmap the student's pseudo-masks come from.", tuple(METHODS)
    )
    student_sigma: float = _field(2.0, "Smoothing (px) of the teacher map before thresholds.")
    student_positive_quantile: float = _field(
        0.99, "Lesion level: this quantile of grade-0 images' map maxima."
    )
    student_negative_quantile: float = _field(
        0.5, "Background level: this quantile of grade-0 images' map maxima."
    )
    student_width: int = _field(16, "Filters of the student's stem.")
    student_depth: int = _field(2, "Pooled stages of the student.")
    student_epochs: int = _field(10, "Student epochs per round.")
    student_batch_size: int = _field(16, "Student batch size.")
    student_learning_rate: float = _field(1e-3, "Student Adam learning rate.")
    student_rounds: int = _field(1, "1, or 2 (round 2 learns from round 1's map).")

    def __post_init__(self):
        _check_choice("student_teacher_method", self.student_teacher_method, tuple(METHODS))
        _check(self.student_sigma >= 0, f"--student_sigma={self.student_sigma} must be >= 0")
        _check(
            0.0 <= self.student_negative_quantile <= self.student_positive_quantile <= 1.0,
            f"--student_negative_quantile={self.student_negative_quantile} and "
            f"--student_positive_quantile={self.student_positive_quantile} must satisfy "
            "0 <= negative <= positive <= 1",
        )
        for name in ("student_width", "student_depth", "student_epochs", "student_batch_size"):
            _check(getattr(self, name) >= 1, f"--{name}={getattr(self, name)} must be >= 1")
        _check(
            self.student_learning_rate > 0,
            f"--student_learning_rate={self.student_learning_rate} must be > 0",
        )
        _check(
            self.student_rounds in (1, 2), f"--student_rounds={self.student_rounds} must be 1 or 2"
        )


_CHANGEABLE_ON_RESUME = ("resume", "verbose")


def flatten_settings(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings dict -> {"data.batch_size": 16, ...}."""
    flat = {}
    for key, value in values.items():
        if isinstance(value, dict):
            flat.update(flatten_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything one training run needs.

    Attributes
    ----------
    model_dir:
        The run directory: config, checkpoints, logs, ``best.keras``, ``metrics.json``.
    epochs:
        Epochs per stage.
    steps_per_epoch:
        Training batches per epoch; 0 means one pass over the training split.
    init_from:
        A ``.keras`` model to start from (fine-tuning); empty trains from scratch.
    resume:
        Continue from the run directory's last checkpoint when it has one.
    precision:
        ``"auto"`` (``mixed_float16`` on GPU, ``float32`` otherwise) or a Keras policy name.
    distribution:
        ``"default"`` (one device), ``"mirrored"`` (all local GPUs) or ``"multi_worker"``
        (``TF_CONFIG``).
    checkpoint_monitor:
        Validation metric that selects ``best.keras`` (loss: lower is better; AUC: higher).
    heatmap_images:
        Validation images whose heatmap overlays go to TensorBoard each epoch.
    verbose:
        Keras progress display: 0 silent, 1 progress bar, 2 one line per epoch.
    """

    model_dir: str = dataclasses.field(
        metadata={"help": "Run directory (config, checkpoints, logs, metrics)."}
    )
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    optimizer: OptimizerConfig = OptimizerConfig()
    heatmap: HeatmapConfig = HeatmapConfig()
    student: StudentConfig = StudentConfig()
    epochs: int = _field(250, "Epochs per stage.")
    steps_per_epoch: int = _field(0, "Batches per epoch (0: one pass).")
    init_from: str = _field("", "A .keras model to fine-tune.")
    resume: bool = _field(True, "Resume from the run directory's checkpoint.")
    precision: str = _field("auto", "Dtype policy.", PRECISIONS)
    distribution: str = _field("default", "tf.distribute strategy.", DISTRIBUTIONS)
    seed: int = _field(0, "Seed of weights, splits and data order.")
    checkpoint_monitor: str = _field("val_loss", "Selects best.keras.", MONITORS)
    heatmap_images: int = _field(4, "Heatmap overlays per epoch in TensorBoard.")
    verbose: int = _field(1, "0 silent, 1 progress bar, 2 one line per epoch.")

    def __post_init__(self):
        _check(bool(self.model_dir), "--model_dir is required")
        _check(self.epochs >= 1, f"--epochs={self.epochs} must be at least 1")
        _check(self.steps_per_epoch >= 0, f"--steps_per_epoch={self.steps_per_epoch} must be >= 0")
        _check_choice("precision", self.precision, PRECISIONS)
        _check_choice("distribution", self.distribution, DISTRIBUTIONS)
        _check_choice("checkpoint_monitor", self.checkpoint_monitor, MONITORS)
        _check(self.heatmap_images >= 0, f"--heatmap_images={self.heatmap_images} must be >= 0")
        _check(self.verbose in (0, 1, 2), f"--verbose={self.verbose} must be 0, 1 or 2")
        if self.init_from:
            path = Path(self.init_from)
            _check(path.is_file(), f"--init_from={self.init_from}: no such file")
            _check(path.suffix == ".keras", f"--init_from={self.init_from}: expected a .keras file")
        if self.data.data_source == "tfrecords":
            _check(
                Path(self.data.data_dir).is_dir(),
                f"--data_dir={self.data.data_dir}: no such directory",
            )
        if self.student.student_enabled:
            side = min_side(self.student.student_depth)
            _check(
                self.model.image_size % side == 0,
                f"--student_depth={self.student.student_depth} needs an --image_size that is a "
                f"multiple of {side}, got {self.model.image_size}",
            )

    def to_dict(self) -> dict[str, Any]:
        """The config as plain JSON-ready values."""
        return dataclasses.asdict(self)

    def write(self, path: str | Path) -> Path:
        """Write the config as JSON (``config.json`` of the run directory)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n")
        return path

    def check_continues(self, path: str | Path) -> None:
        """Refuse to reuse a run directory whose ``config.json`` describes another run.

        A run directory resumes from its checkpoints and skips finished stages, so training
        it with different settings would silently keep the old run's results. Only `resume`
        and `verbose` may change between the interrupted run and its continuation; a setting
        the file lacks (added to drscreen since) counts as its default.

        Raises
        ------
        ValueError
            Naming the settings that differ, when ``path`` exists and they do.
        """
        path = Path(path)
        if not path.is_file():
            return
        before = flatten_settings(json.loads(path.read_text()))
        now = flatten_settings(json.loads(json.dumps(self.to_dict())))
        # A setting added since that run began is absent from its file: it ran with the default.
        defaults = flatten_settings(json.loads(json.dumps(TrainConfig(self.model_dir).to_dict())))
        changed = sorted(
            name
            for name in before.keys() | now.keys()
            if name.split(".")[-1] not in _CHANGEABLE_ON_RESUME
            and before.get(name, defaults.get(name)) != now.get(name)
        )
        _check(
            not changed,
            f"{path.parent} holds a run with other settings ({', '.join(changed)}); choose a "
            "new --model_dir, or repeat the run's flags to resume it",
        )

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "TrainConfig":
        """Rebuild a config written by `write` (validating it again)."""
        values = dict(values)
        model = dict(values.pop("model"))
        model["progressive_sizes"] = tuple(model.get("progressive_sizes", ()))
        return cls(
            data=DataConfig(**values.pop("data")),
            model=ModelConfig(**model),
            optimizer=OptimizerConfig(**values.pop("optimizer")),
            heatmap=HeatmapConfig(**values.pop("heatmap")),
            student=StudentConfig(**values.pop("student", {})),
            **values,
        )
