"""Evaluation: image-level screening metrics, lesion-level heatmap metrics, reports.

Owns metrics (`screening`, `patients`, `calibration`, `lesions`, `heatmap_quality`), their
batch-by-batch accumulators (`streaming`), the stream of a data source through a model
(`runner`), the assembly of a model's sections (`sections`) and the one entry that evaluates
a model on an evaluated split with thresholds from its own validation split
(`model_evaluation.evaluate_model`, used by training and by ``drscreen evaluate``), plus the
report's gallery, figures and tables. Must not train or export models.
"""
