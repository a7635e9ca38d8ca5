"""The pixel-supervised reference tuned on validation masks, before any test image is seen.

The reference is the 100 % of the benchmark's goals, so it must be a real detector rather than
a first guess. The study runs on one split (the first seed's), with the rule fixed here:

1. **Coordinate search at one budget**: from `start_config` (the first guess: width 16, depth
   2, focal loss, flips and quarter turns), each step of `steps` changes one setting of the
   best configuration so far (twice the width, one stage deeper, Dice + cross-entropy, no
   augmentation); each configuration trains in blocks and is measured after each search
   checkpoint (10, 20 and 40 epochs by default; σ chosen at each checkpoint as for every
   map), stopping early at a checkpoint that does not beat its best by `MIN_GAIN`; a change is
   kept when its best validation all-lesion FROC beats the best so far by more than
   `MIN_GAIN`.
2. **Length until the curve flattens**: the chosen configuration trains again through the
   search checkpoints and then doublings of the last (80, 160, ... up to `MAX_EPOCHS`), and
   stops at the first checkpoint that does not beat its best by `MIN_GAIN`: its best
   checkpoint gives the epochs, and its model is that split's reference.

The criterion is the headline figure: the validation FROC of the reference's all-lesion map.
Every curve is recorded (`TuningResult.to_dict`), so the results show it flattening (or say
that it had not by `MAX_EPOCHS`). Each search trial is cached as JSON in the study's folder,
so a killed study resumes at the next trial. The chosen configuration trains every seed's
reference in the same blocks (`schedule`) and, on the validation masks only, the few-shot
reference.
"""

import dataclasses
import json
import os
from collections.abc import Callable
from pathlib import Path

import keras

from drscreen.benchmark import reference, validation
from drscreen.data.sources import Source
from drscreen.evaluation.runner import RunnerConfig

CHECKPOINTS = (10, 20, 40)
MIN_GAIN = 0.005
MAX_EPOCHS = 320


def schedule(checkpoints: tuple[int, ...], epochs: int = MAX_EPOCHS) -> tuple[int, ...]:
    """The search checkpoints, then doublings of the last, up to ``epochs`` included."""
    blocks = list(checkpoints)
    while blocks[-1] * 2 <= epochs:
        blocks.append(blocks[-1] * 2)
    return tuple(block for block in blocks if block <= epochs)


def start_config(width: int = 16) -> reference.ReferenceConfig:
    """The first guess: ``width``, depth 2, focal loss, flips and quarter turns."""
    return reference.ReferenceConfig(width=width, depth=2, loss="focal", augmentation=True)


def steps(start: reference.ReferenceConfig) -> tuple[tuple[str, object], ...]:
    """The coordinate search's changes, in order: (setting, value)."""
    return (
        ("width", 2 * start.width),
        ("depth", start.depth + 1),
        ("loss", "dice_bce"),
        ("augmentation", False),
    )


@dataclasses.dataclass(frozen=True)
class Trial:
    """One configuration's training curve on validation.

    Attributes
    ----------
    config:
        The configuration, ``epochs`` set to its best checkpoint.
    curve:
        Epochs -> (validation all-lesion FROC, chosen σ) at each checkpoint measured.
    froc:
        The best checkpoint's validation all-lesion FROC.
    """

    config: reference.ReferenceConfig
    curve: dict[int, tuple[float, float]]
    froc: float

    def to_dict(self) -> dict:
        return {
            "config": self.config.to_dict(),
            "label": self.config.label,
            "curve": {str(e): {"froc": f, "sigma": s} for e, (f, s) in self.curve.items()},
            "froc": self.froc,
        }

    @classmethod
    def from_dict(cls, values: dict) -> "Trial":
        curve = {int(e): (v["froc"], v["sigma"]) for e, v in values["curve"].items()}
        return cls(config_from_dict(values["config"]), curve, values["froc"])


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """Every trial in order and the chosen one (the best validation FROC)."""

    trials: tuple[Trial, ...]
    chosen: Trial
    checkpoints: tuple[int, ...]
    flattened: bool
    max_epochs: int = MAX_EPOCHS

    def to_dict(self) -> dict:
        first = self.trials[0].config
        return {
            "rule": (
                f"coordinate search from {first.label} over "
                f"{[f'{s}={v}' for s, v in steps(first)]}, a change kept when the validation "
                f"all-lesion FROC rises by > {MIN_GAIN}; each configuration measured after "
                f"{list(self.checkpoints)} epochs; the chosen one then trained through "
                f"{list(schedule(self.checkpoints, self.max_epochs))} epochs until a checkpoint "
                "does not improve "
                f"by > {MIN_GAIN}"
            ),
            "trials": [trial.to_dict() for trial in self.trials],
            "chosen": self.chosen.to_dict(),
            "flattened": self.flattened,
            "blocks": list(schedule(self.checkpoints, self.chosen.config.epochs)),
            "checkpoints": list(self.checkpoints),
            "max_epochs": self.max_epochs,
        }


def _trial(
    train: Source,
    validation_source: Source,
    config: reference.ReferenceConfig,
    runner_config: RunnerConfig,
    sigmas: tuple[float, ...],
    seed: int,
    checkpoints: tuple[int, ...],
    log: Callable[[str], None],
) -> tuple[Trial, list | None]:
    """Train ``config`` checkpoint by checkpoint until the validation FROC stops improving;
    the trial and the best checkpoint's weights."""
    training = reference.ReferenceTraining(train, runner_config.image_size, config, seed)
    curve: dict[int, tuple[float, float]] = {}
    best_froc, best_epochs, best_weights = -1.0, 0, None
    for epochs in checkpoints:
        model = training.train_to(epochs)
        all_lesions = reference.heatmap_functions(model)[f"reference_{reference.ALL_LESIONS}"]
        study = validation.study_method(validation_source, all_lesions, runner_config, sigmas)
        curve[epochs] = (study.froc, study.sigma)
        log(f"reference {config.label}, {epochs} epochs: validation FROC {study.froc:.3f}")
        if study.froc <= best_froc + MIN_GAIN:
            break
        best_froc, best_epochs, best_weights = study.froc, epochs, model.get_weights()
    chosen = dataclasses.replace(config, epochs=best_epochs)
    return Trial(chosen, curve, best_froc), best_weights


def _cached_trial(
    folder: Path, config: reference.ReferenceConfig, run_trial, checkpoints: tuple[int, ...]
) -> Trial:
    """A search trial read back from ``folder`` when a killed study measured it at the same
    ``checkpoints`` (they name the file), else run and written there."""
    measured_at = "-".join(str(epochs) for epochs in checkpoints)
    path = folder / f"{config.label.replace(' ', '_')}_at_{measured_at}.json"
    if path.is_file():
        return Trial.from_dict(json.loads(path.read_text()))
    trial, _ = run_trial(config)
    folder.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(trial.to_dict(), indent=1) + "\n")
    os.replace(partial, path)
    return trial


def tune_reference(
    train: Source,
    validation_source: Source,
    runner_config: RunnerConfig,
    sigmas: tuple[float, ...],
    seed: int,
    folder: Path,
    start: reference.ReferenceConfig | None = None,
    checkpoints: tuple[int, ...] = CHECKPOINTS,
    max_epochs: int = MAX_EPOCHS,
    log: Callable[[str], None] = print,
) -> tuple[TuningResult, keras.Model]:
    """The study of the module docstring on one split (search trials cached in ``folder``);
    the result and the chosen configuration's model at its best checkpoint."""
    start = start or start_config()

    def run_trial(config, blocks=checkpoints):
        return _trial(train, validation_source, config, runner_config, sigmas, seed, blocks, log)

    best = _cached_trial(folder, start, run_trial, checkpoints)
    trials = [best]
    for setting, value in steps(start):
        trial = _cached_trial(
            folder, dataclasses.replace(best.config, **{setting: value}), run_trial, checkpoints
        )
        trials.append(trial)
        if trial.froc > best.froc + MIN_GAIN:
            best = trial
    length, weights = run_trial(best.config, schedule(checkpoints, max_epochs))
    flattened = length.config.epochs < max(length.curve)
    model = reference.reference_net(
        runner_config.image_size, length.config.width, length.config.depth
    )
    model.set_weights(weights)
    result = TuningResult(tuple(trials), length, tuple(checkpoints), flattened, max_epochs)
    return result, model


def config_from_dict(values: dict) -> reference.ReferenceConfig:
    """A `ReferenceConfig` back from `Trial.to_dict`'s ``config``."""
    return reference.ReferenceConfig(**values)
