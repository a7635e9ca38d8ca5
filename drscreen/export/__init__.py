"""Export: SavedModel for TF Serving, TFLite and ONNX, all returning score and heatmap.

Owns conversion of a trained model into deployable artefacts. Must not serve requests.
"""
