"""Export: PyTorch modules to ONNX, verification of the graph against PyTorch, ONNX Runtime predictors.

Importing the package imports nothing heavy: ``cvcycle.export.onnx`` needs torch, while
``cvcycle.export.onnx_predictor`` runs on ONNX Runtime alone.
"""
