"""Fitting the gradability gate (`drscreen.models.quality`) on labelled photographs.

The gate is fitted on one set of photographs labelled gradable or not, and its threshold is
chosen on another (`fit_gate`); both are streamed through `drscreen.evaluation.triage.
triage_stream` at the analysis size of `drscreen.data.gradability`. Without a programme's
own labelled photographs, `synthetic_sets` writes two sets of the synthetic ``screening``
mix, with more ungradable photographs than the preset so that both classes are well
represented, at several sizes (photographs generated small and photographs reduced from
larger ones). `fit_and_save` is ``scripts/fit_quality_gate.py``.
"""

import dataclasses
import pathlib
import tempfile
from collections.abc import Sequence

import numpy as np

from drscreen.data.gradability import ANALYSIS_SIZE
from drscreen.data.readers import DATASET_NAMES, read_dataset
from drscreen.data.records import FundusRecord
from drscreen.data.synthetic import SynthConfig, write_dataset
from drscreen.evaluation import screening
from drscreen.evaluation.runner import RunnerConfig
from drscreen.evaluation.triage import TriageArrays, triage_stream
from drscreen.models.quality import (
    DEFAULT_GATE_FILE,
    DEFAULT_TARGET_SENSITIVITY,
    QualityGate,
    fit_quality_gate,
)
from drscreen.training.config import _field


@dataclasses.dataclass(frozen=True)
class SyntheticGateData:
    """How `synthetic_sets` generates the gate's photographs (without ``data``)."""

    n: int = _field(400, "Synthetic photographs per set and per size.")
    sizes: tuple[int, ...] = _field((128, 256), "Sizes the synthetic photographs are made at.")
    seed: int = _field(1000, "Seed of the synthetic fitting set (validation: seed + 1).")
    ungradable_fraction: float = _field(0.4, "Share of ungradable synthetic photographs.")

    def __post_init__(self):
        if self.n < 1 or not self.sizes or not 0 < self.ungradable_fraction < 1:
            raise ValueError(
                f"n {self.n} must be >= 1, sizes {self.sizes} non-empty and "
                f"ungradable_fraction {self.ungradable_fraction} in (0, 1)"
            )


@dataclasses.dataclass(frozen=True)
class GateFitConfig:
    """One fit of the gate: where its photographs come from and where it goes."""

    out: str = _field(str(DEFAULT_GATE_FILE), "The quality.json to write.")
    data: str = _field("", "Labelled photographs to fit on (default: synthetic ones).")
    validation_data: str = _field("", "Labelled photographs to choose the threshold on.")
    dataset: str = _field("synthetic", "Reader of --data and --validation_data.", DATASET_NAMES)
    synthetic: SyntheticGateData = SyntheticGateData()
    target: float = _field(
        DEFAULT_TARGET_SENSITIVITY, "Share of the validation ungradable photographs caught."
    )
    workers: int = _field(0, "Processes generating synthetic photographs; 0: every core.")

    def __post_init__(self):
        if bool(self.data) != bool(self.validation_data):
            raise ValueError("--data and --validation_data go together")
        if not 0 < self.target <= 1:
            raise ValueError(f"--target={self.target} must be in (0, 1]")


def synthetic_sets(
    config: SyntheticGateData, out_dir: str | pathlib.Path, workers: int | None = None
) -> tuple[list[FundusRecord], list[FundusRecord]]:
    """Write the fitting and validation sets under ``out_dir``; their records."""
    sets: tuple[list, list] = ([], [])
    for offset, records in enumerate(sets):
        for size in config.sizes:
            synth = SynthConfig.from_preset(
                "screening",
                n=config.n,
                size=size,
                seed=config.seed + offset,
                ungradable_fraction=config.ungradable_fraction,
            )
            folder = pathlib.Path(out_dir) / f"{('fit', 'validation')[offset]}-{size}"
            write_dataset(synth, folder, workers=workers, progress=False)
            records.extend(read_dataset("synthetic", folder))
    return sets


def gate_features(records: Sequence[FundusRecord], batch_size: int) -> TriageArrays:
    """The gradability features of the labelled ones of ``records`` (no model, no gate)."""
    labelled = [record for record in records if record.gradable is not None]
    if not labelled:
        raise ValueError("none of the photographs is labelled gradable or ungradable")
    config = RunnerConfig(
        image_size=ANALYSIS_SIZE, batch_size=batch_size, lesion_metrics=False, progress=False
    )
    return triage_stream(labelled, None, None, config)


def fit_gate(
    fit_records: Sequence[FundusRecord],
    validation_records: Sequence[FundusRecord],
    fitted_on: str,
    target: float = DEFAULT_TARGET_SENSITIVITY,
    batch_size: int = 32,
) -> tuple[QualityGate, dict]:
    """The gate fitted on ``fit_records``, its threshold chosen on ``validation_records``
    (of each, the photographs labelled gradable or not), and its figures on both.

    Returns
    -------
    The gate, and ``{"fit"|"validation": {"images", "ungradable", "auc", "caught"}}``: the
    ungradable-detection AUC of ``1 - quality`` and the share caught at the threshold.
    """
    fit = gate_features(fit_records, batch_size)
    validation = gate_features(validation_records, batch_size)
    gate = fit_quality_gate(
        fit.features,
        fit.gradable == 1,
        validation.features,
        validation.gradable == 1,
        target,
        fitted_on=fitted_on,
    )
    figures = {}
    for name, arrays in (("fit", fit), ("validation", validation)):
        ungradable = arrays.gradable == 0
        quality = gate.quality(arrays.features)
        figures[name] = {
            "images": int(ungradable.size),
            "ungradable": int(ungradable.sum()),
            "auc": screening.roc_auc(ungradable, 1.0 - quality),
            "caught": float(np.mean(gate.ungradable(quality)[ungradable])),
        }
    return gate, figures


def fit_and_save(config: GateFitConfig, command: str = "") -> tuple[QualityGate, dict]:
    """Fit the gate ``config`` describes and write it to ``config.out`` with its figures."""
    with tempfile.TemporaryDirectory(prefix="drscreen-gate-") as scratch:
        if config.data:
            fit_records = read_dataset(config.dataset, config.data)
            validation_records = read_dataset(config.dataset, config.validation_data)
            fitted_on = f"{config.data} (threshold on {config.validation_data})"
        else:
            data = config.synthetic
            fit_records, validation_records = synthetic_sets(data, scratch, config.workers or None)
            fitted_on = (
                f"synthetic screening mix: {data.n} photographs per size {list(data.sizes)}, "
                f"{data.ungradable_fraction:.0%} ungradable, seed {data.seed} "
                f"(threshold on seed {data.seed + 1})"
            )
        gate, figures = fit_gate(fit_records, validation_records, fitted_on, config.target)
    gate.save(config.out, command=command, figures=figures)
    return gate, figures
