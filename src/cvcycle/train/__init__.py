"""Training runs: the typed config and its precedence, seeds and environment capture, the data a run
reads (materialised manifests + blob store), the tracker (MLflow), and the run service that turns a
dataset version into a recorded run and a new model version (:mod:`cvcycle.train.service`)."""
