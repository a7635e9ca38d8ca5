"""The benchmark's configuration: the data, the seeds, what is trained and how maps are cut."""

import dataclasses

from drscreen.heatmaps import METHODS

MAX_MAP_STRIDE = 4
"""Maps coarser than this many input pixels per map pixel (Grad-CAM of a network whose last
convolution sees the image at 1/16 or 1/32) cannot place a candidate within 2 px of a lesion a
few pixels wide: neither the default map nor the student's teacher is chosen among them."""
SIGNED_METHODS = ("sensitivity", "guided_backprop", "deconvnet")
"""Methods whose input-space signal has a sign, so ``form="increase"``/``"decrease"`` apply."""


def _field(default, help: str):
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class BenchmarkConfig:
    """What `drscreen.benchmark.run.run_benchmark` trains and measures.

    Attributes
    ----------
    out:
        The benchmark folder: ``data/`` (the synthetic benchmark, generated once), one folder
        per seed with a run directory per model, each stage's JSON, ``results.json`` and
        ``results.md``. Rerunning with the same folder resumes.
    recipes:
        Training flagfiles compared (``configs/benchmark_*.flags``); the first is the plain
        baseline, the post-hoc methods' reference point. Their data, size, seed and run
        directory are set by the benchmark.
    control_recipe:
        The recipe (file name without ``.flags``) also trained on shuffled grades, for the
        sanity check.
    seeds:
        One split and initialisation per seed (at least 3 for mean ± sd).
    epochs:
        Epochs of every recipe and of the control; 0 keeps each recipe's own.
    synth_*:
        The synthetic benchmark: images, side in px (the models' input size), lesion-size
        multiplier (lesions stay several pixels wide), seed, difficulty preset.
    methods:
        Heatmap methods evaluated on every image-supervised model (one map for all lesions).
    typed_methods:
        Methods of ``methods`` also evaluated as two type-specific maps, the signed halves of
        their input-space signal (`drscreen.heatmaps.sensitivity.channel_map`: ``decrease``
        for red lesions, ``increase`` for bright ones).
    finetune_recipes:
        Heatmap-aware training flagfiles (the paper's method): each fine-tunes the first
        recipe's model of the same seed, with its penalty at the λ chosen on the first seed
        (`finetune_multipliers`).
    finetune_multipliers:
        λ searched for each fine-tuning recipe, as multiples of its flagfile's
        ``--heatmap_weight``; the largest whose validation AUC stays at or above the plain
        model's validation CI lower bound is kept (mask-free, first seed).
    sigmas:
        Smoothing (px) searched for each map on the validation split's lesion masks.
    reference_width, reference_checkpoints:
        The reference tuning's first width (its width step doubles it) and the epochs after
        which each configuration of its search is measured; the chosen one then trains
        through doublings of the last until its validation curve flattens
        (`drscreen.benchmark.tuning`), at most ``reference_max_epochs`` (a curve still rising
        there makes the reference a lower bound).
    references:
        Train and measure the references (the tuning study runs once, on the first seed):
        ``--noreferences`` for a recipe group run beside a full run into the same folder.
    student:
        Train the lesion student of the first recipe (`drscreen.training.student`) per seed,
        its teacher the first recipe's method with the best validation grade separation.
    student_positive_quantile:
        The student's lesion level (`drscreen.training.config.StudentConfig`): the smoke run
        lowers it, its 1-epoch teacher separating nothing at 0.99.
    batch_size:
        Evaluation batch.
    """

    out: str = dataclasses.field(metadata={"help": "Benchmark folder (resumed when it exists)."})
    recipes: tuple[str, ...] = _field(
        ("configs/benchmark_plain.flags", "configs/benchmark_evidence.flags"),
        "Training flagfiles compared; the first is the plain baseline.",
    )
    control_recipe: str = _field("benchmark_evidence", "Recipe also trained on shuffled grades.")
    seeds: tuple[int, ...] = _field((0, 1, 2), "Seeds (split and initialisation).")
    epochs: int = _field(0, "Epochs of every recipe (0: the recipe's own).")
    synth_n: int = _field(1500, "Synthetic images.")
    synth_size: int = _field(192, "Image side (px), also the models' input size.")
    synth_lesion_size: float = _field(2.0, "Synthetic lesion-size multiplier.")
    synth_seed: int = _field(1, "Seed of the synthetic benchmark.")
    synth_difficulty: str = _field("standard", "Synthetic difficulty preset.")
    methods: tuple[str, ...] = _field(
        ("sensitivity", "gradient_input", "guided_backprop", "gradcam"), "Heatmap methods."
    )
    typed_methods: tuple[str, ...] = _field(
        ("sensitivity", "guided_backprop"), "Methods also scored as type-specific signed maps."
    )
    finetune_recipes: tuple[str, ...] = _field(
        (
            "configs/benchmark_heatmap_aware_sparsity.flags",
            "configs/benchmark_heatmap_aware_total_variation.flags",
            "configs/benchmark_heatmap_aware_entropy.flags",
        ),
        "Heatmap-aware flagfiles fine-tuning the first recipe's model.",
    )
    finetune_multipliers: tuple[float, ...] = _field(
        (0.3, 1.0, 3.0), "λ searched, as multiples of each fine-tuning recipe's own."
    )
    sigmas: tuple[float, ...] = _field((0.0, 1.0, 2.0, 4.0), "Smoothing searched (px).")
    reference_width: int = _field(16, "First width of the reference tuning.")
    reference_checkpoints: tuple[int, ...] = _field(
        (10, 20, 40), "Epochs after which the reference search measures a configuration."
    )
    reference_max_epochs: int = _field(
        320, "Longest training of the reference's length phase (doublings of the last checkpoint)."
    )
    references: bool = _field(True, "Train and measure the pixel-supervised references.")
    student: bool = _field(True, "Train and measure the lesion student.")
    student_positive_quantile: float = _field(
        0.99, "The student's lesion level: this quantile of grade-0 images' teacher maxima."
    )
    batch_size: int = _field(32, "Evaluation batch.")

    def __post_init__(self):
        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(message)

        check(bool(self.recipes), "--recipes must name at least one training flagfile")
        names = [recipe_name(path) for path in self.recipes + self.finetune_recipes]
        check(len(set(names)) == len(names), f"--recipes names a recipe twice: {names}")
        check(
            self.control_recipe in names,
            f"--control_recipe={self.control_recipe} is not one of --recipes ({', '.join(names)})",
        )
        check(bool(self.seeds), "--seeds must name at least one seed")
        check(len(set(self.seeds)) == len(self.seeds), f"--seeds repeats a seed: {self.seeds}")
        unknown = sorted(set(self.methods) - set(METHODS))
        check(not unknown, f"--methods: unknown {unknown}; methods: {', '.join(METHODS)}")
        check(bool(self.methods), "--methods must name at least one method")
        untyped = sorted(set(self.typed_methods) - set(SIGNED_METHODS))
        check(not untyped, f"--typed_methods: {untyped} have no signed maps ({SIGNED_METHODS})")
        missing = sorted(set(self.typed_methods) - set(self.methods))
        check(not missing, f"--typed_methods: {missing} are not in --methods")
        check(
            bool(self.finetune_multipliers) and all(m > 0 for m in self.finetune_multipliers),
            f"--finetune_multipliers={self.finetune_multipliers} must be positive numbers",
        )
        check(
            all(sigma >= 0 for sigma in self.sigmas) and bool(self.sigmas),
            f"--sigmas={self.sigmas} must be non-negative numbers",
        )
        check(self.epochs >= 0, f"--epochs={self.epochs} must be >= 0")
        check(self.reference_width >= 1, f"--reference_width={self.reference_width} must be >= 1")
        checkpoints = self.reference_checkpoints
        check(
            bool(checkpoints)
            and checkpoints[0] >= 1
            and list(checkpoints) == sorted(set(checkpoints)),
            f"--reference_checkpoints={checkpoints} must be increasing epochs >= 1",
        )
        check(
            self.reference_max_epochs >= checkpoints[-1],
            f"--reference_max_epochs={self.reference_max_epochs} must be >= the last "
            f"--reference_checkpoints ({checkpoints[-1]})",
        )
        check(
            0.5 <= self.student_positive_quantile <= 1.0,
            f"--student_positive_quantile={self.student_positive_quantile} must be in [0.5, 1] "
            "(the background level is the median)",
        )
        check(self.batch_size >= 1, f"--batch_size={self.batch_size} must be >= 1")


def recipe_name(path: str) -> str:
    """``configs/benchmark_plain.flags`` -> ``benchmark_plain``."""
    name = path.rsplit("/", 1)[-1]
    return name[: -len(".flags")] if name.endswith(".flags") else name
