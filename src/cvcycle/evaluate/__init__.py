"""Evaluation: detection metrics (COCO mAP via faster-coco-eval, precision and recall at the operating
threshold, false positives per 1,000 frames, fall recall), evaluating a model on a dataset slice, and
the 2x2 regression gate with declarative criteria and bootstrap intervals.

Modules: ``metrics`` (figures from truth and predictions), ``service`` (frames of a version in,
``EvaluationResult`` out), ``criteria`` (the gate's YAML file), ``bootstrap`` (paired intervals),
``gate`` (old data / diff / corner cases, ``run_gate``) and ``report`` (JSON and Markdown).
"""
