"""The benchmark's configuration: the data, the seeds, what is trained and how maps are cut."""

import dataclasses

from drscreen.heatmaps import METHODS


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
        Heatmap methods evaluated on every image-supervised model.
    sigmas:
        Smoothing (px) searched for each method on the validation split's lesion masks.
    reference_epochs, reference_width:
        The pixel-supervised reference detector's training length and base filters.
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
    sigmas: tuple[float, ...] = _field((0.0, 1.0, 2.0, 4.0), "Smoothing searched (px).")
    reference_epochs: int = _field(15, "Epochs of the pixel-supervised reference.")
    reference_width: int = _field(16, "Base filters of the pixel-supervised reference.")
    batch_size: int = _field(32, "Evaluation batch.")

    def __post_init__(self):
        def check(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(message)

        check(bool(self.recipes), "--recipes must name at least one training flagfile")
        names = [recipe_name(path) for path in self.recipes]
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
        check(
            all(sigma >= 0 for sigma in self.sigmas) and bool(self.sigmas),
            f"--sigmas={self.sigmas} must be non-negative numbers",
        )
        check(self.epochs >= 0, f"--epochs={self.epochs} must be >= 0")
        check(
            self.reference_epochs >= 1, f"--reference_epochs={self.reference_epochs} must be >= 1"
        )
        check(self.reference_width >= 1, f"--reference_width={self.reference_width} must be >= 1")
        check(self.batch_size >= 1, f"--batch_size={self.batch_size} must be >= 1")


def recipe_name(path: str) -> str:
    """``configs/benchmark_plain.flags`` -> ``benchmark_plain``."""
    name = path.rsplit("/", 1)[-1]
    return name[: -len(".flags")] if name.endswith(".flags") else name
