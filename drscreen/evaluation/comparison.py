"""The heatmap-method comparison table: one row per method, the paper's columns.

Rows, in this order when present: the sensitivity heatmap of the plain-trained model, the
sensitivity heatmap of a heatmap-aware-trained model, then the competing methods on the
plain model (gradient × input, guided backprop, deconvnet, LRP-ε, Grad-CAM, integrated
gradients, SmoothGrad). Columns are `drscreen.evaluation.report.COMPARISON_COLUMNS`: FROC
score per lesion group, sensitivity at 1 FP/image, lesion-type image AUC, relevance mass,
pointing game, deletion/insertion AUC and time per image. Owns ordering and naming only.
"""

import dataclasses
from collections.abc import Mapping

from drscreen.evaluation import report

HEATMAP_AWARE = "sensitivity_heatmap_aware"
ROW_ORDER = (
    "sensitivity",
    HEATMAP_AWARE,
    "gradient_input",
    "guided_backprop",
    "deconvnet",
    "lrp",
    "gradcam",
    "integrated_gradients",
    "smoothgrad",
)
ROW_LABELS = {
    "sensitivity": "Sensitivity (Quellec et al.), plain-trained model",
    HEATMAP_AWARE: "Sensitivity, heatmap-aware-trained model",
    "gradient_input": "Gradient × input",
    "guided_backprop": "Guided backprop",
    "deconvnet": "Deconvnet",
    "lrp": "LRP-ε",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "Integrated gradients",
    "smoothgrad": "SmoothGrad",
}


@dataclasses.dataclass(frozen=True)
class MethodScores:
    """One method's figures, as the evaluation stream reduced them.

    Attributes
    ----------
    lesion_metrics:
        `drscreen.evaluation.streaming.LesionAccumulator.metrics()`, empty without masks.
    perturbation_metrics:
        `PerturbationAccumulator.metrics()`, empty without deletion/insertion curves.
    seconds_per_image:
        Mean heatmap time per image, None when unmeasured.
    """

    lesion_metrics: Mapping
    perturbation_metrics: Mapping
    seconds_per_image: float | None


def comparison_rows(
    results: Mapping[str, MethodScores], quality_target: str = "red_lesions"
) -> list[dict]:
    """Table rows for the methods in `results`, in `ROW_ORDER`.

    Parameters
    ----------
    results:
        Row key (a name of `ROW_ORDER`) to the method's figures.
    quality_target:
        Lesion type or group that relevance mass and the pointing game are read from.

    Returns
    -------
    Rows keyed like `report.COMPARISON_COLUMNS`; ``method`` holds the row's label. Cells a
    method has no value for (e.g. lesion columns without masks) are None.
    """
    unknown = sorted(set(results) - set(ROW_ORDER))
    if unknown:
        raise ValueError(f"unknown comparison rows {unknown}; known: {', '.join(ROW_ORDER)}")
    rows = []
    for key in ROW_ORDER:
        if key not in results:
            continue
        result = results[key]
        rows.append(
            report.comparison_row(
                ROW_LABELS[key],
                result.lesion_metrics,
                result.perturbation_metrics,
                result.seconds_per_image,
                quality_target,
            )
        )
    return rows
