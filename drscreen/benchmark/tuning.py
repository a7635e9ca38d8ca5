"""The pixel-supervised reference tuned on validation masks, before any test image is seen.

The reference is the 100 % of the benchmark's goals, so it must be a real detector rather than
a first guess. The study runs on one split (the first seed's), with the rule fixed here before
any run:

1. **Coordinate search**: from `start_config` (the first guess: width 16, depth 2, focal loss,
   flips and quarter turns), each step of `steps` changes one setting of the best configuration
   so far (twice the width, one stage deeper, Dice + cross-entropy, no augmentation); the
   change is kept when the validation all-lesion FROC rises by more than `MIN_GAIN`.
2. **Training length**: each configuration trains in blocks, measured after each checkpoint
   (`CHECKPOINTS` epochs by default; σ chosen at each checkpoint as for every map); it stops at
   the first checkpoint that does not beat its best by `MIN_GAIN` — where its validation curve
   stops improving. Its figure is its best checkpoint, whose epochs it keeps.

The criterion is the headline figure: the validation FROC of the reference's all-lesion map.
Everything is recorded (`TuningResult.to_dict`: every configuration's curve), so the results
show the curve flattening. The chosen configuration trains every seed's reference
(`reference.train_reference` with the checkpoints as blocks: the same schedule) and, on the
validation masks only, the few-shot reference.
"""

import dataclasses
from collections.abc import Callable

import keras

from drscreen.benchmark import reference, validation
from drscreen.data.sources import Source
from drscreen.evaluation.runner import RunnerConfig

CHECKPOINTS = (10, 20, 40, 80)
MIN_GAIN = 0.005


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


@dataclasses.dataclass(frozen=True)
class TuningResult:
    """Every trial in order and the chosen one (the best validation FROC)."""

    trials: tuple[Trial, ...]
    chosen: Trial
    checkpoints: tuple[int, ...]

    def to_dict(self) -> dict:
        first = self.trials[0].config
        return {
            "rule": (
                f"coordinate search from {first.label} over "
                f"{[f'{s}={v}' for s, v in steps(first)]}, a change kept when the validation "
                f"all-lesion FROC rises by > {MIN_GAIN}; each configuration measured after "
                f"{list(self.checkpoints)} epochs, stopped at the first checkpoint that does "
                "not improve"
            ),
            "trials": [trial.to_dict() for trial in self.trials],
            "chosen": self.chosen.to_dict(),
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
) -> tuple[Trial, list]:
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


def tune_reference(
    train: Source,
    validation_source: Source,
    runner_config: RunnerConfig,
    sigmas: tuple[float, ...],
    seed: int,
    start: reference.ReferenceConfig | None = None,
    checkpoints: tuple[int, ...] = CHECKPOINTS,
    log: Callable[[str], None] = print,
) -> tuple[TuningResult, keras.Model]:
    """The study of the module docstring on one split; the result and the chosen
    configuration's model at its best checkpoint."""
    start = start or start_config()
    args = (runner_config, sigmas, seed, checkpoints, log)
    best, weights = _trial(train, validation_source, start, *args)
    trials = [best]
    for setting, value in steps(start):
        config = dataclasses.replace(best.config, **{setting: value})
        trial, trial_weights = _trial(train, validation_source, config, *args)
        trials.append(trial)
        if trial.froc > best.froc + MIN_GAIN:
            best, weights = trial, trial_weights
    model = reference.reference_net(runner_config.image_size, best.config.width, best.config.depth)
    model.set_weights(weights)
    return TuningResult(tuple(trials), best, tuple(checkpoints)), model


def config_from_dict(values: dict) -> reference.ReferenceConfig:
    """A `ReferenceConfig` back from `Trial.to_dict`'s ``config``."""
    return reference.ReferenceConfig(**values)
