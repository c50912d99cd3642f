"""Models: the ``Detections`` value type, the model-adapter protocol and its registry, built-in adapters."""
