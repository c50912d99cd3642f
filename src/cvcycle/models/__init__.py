"""Models: the ``Detections`` value type, the model-adapter protocol and its registry, built-in adapters,
and the one bridge to COCO evaluation (``coco_eval``)."""
