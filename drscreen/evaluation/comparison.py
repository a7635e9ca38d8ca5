"""The heatmap-method comparison table: one row per method, the paper's columns.

Rows, in this order when present: the sensitivity heatmap of the plain-trained model, the
sensitivity heatmap of a heatmap-aware-trained model, the run's lesion student's map, then
the competing methods on the plain model (gradient × input, guided backprop, deconvnet,
LRP-ε, Grad-CAM, integrated gradients, SmoothGrad). Columns are
`drscreen.evaluation.report.COMPARISON_COLUMNS`: FROC score per lesion group, sensitivity at
1 FP/image, lesion-type image AUC, relevance mass on red and on all lesions, pointing game,
deletion/insertion AUC and time per image. Owns ordering and naming only.
"""

from collections.abc import Mapping

from drscreen.evaluation import report
from drscreen.models.lesion_map import LESIONS

HEATMAP_AWARE = "sensitivity_heatmap_aware"
ROW_ORDER = (
    "sensitivity",
    HEATMAP_AWARE,
    LESIONS,
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
    LESIONS: "Lesion student (lesions.keras), trained on pseudo-masks of a heatmap",
    "gradient_input": "Gradient × input",
    "guided_backprop": "Guided backprop",
    "deconvnet": "Deconvnet",
    "lrp": "LRP-ε",
    "gradcam": "Grad-CAM",
    "integrated_gradients": "Integrated gradients",
    "smoothgrad": "SmoothGrad",
}


def comparison_rows(sections: Mapping[str, Mapping]) -> list[dict]:
    """Table rows for the methods in `sections`, in `ROW_ORDER`.

    Parameters
    ----------
    sections:
        Row key (a name of `ROW_ORDER`) to the method's section
        (`drscreen.evaluation.sections.method_section`).

    Returns
    -------
    Rows keyed like `report.COMPARISON_COLUMNS`; ``method`` holds the row's label. Cells a
    method has no value for (e.g. lesion columns without masks) are None.
    """
    unknown = sorted(set(sections) - set(ROW_ORDER))
    if unknown:
        raise ValueError(f"unknown comparison rows {unknown}; known: {', '.join(ROW_ORDER)}")
    return [
        report.comparison_row(ROW_LABELS[key], sections[key])
        for key in ROW_ORDER
        if key in sections
    ]
