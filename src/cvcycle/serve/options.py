"""The server's command-line flags, shared by ``cvcycle serve`` and ``python -m cvcycle.serve``.

Named as Triton names them, so that a deployment can switch servers without relearning flags.
"""

from __future__ import annotations

from cvcycle.serve.repository import CONTROL_MODES

HELP = {
    "repo": "The model repository (Triton layout) to serve.",
    "host": "Address to listen on; 0.0.0.0 for every one.",
    "http_port": "HTTP port (KServe v2 / Triton protocol); -1 to turn HTTP off.",
    "grpc_port": "gRPC port (Triton's GRPCInferenceService); -1 to turn gRPC off.",
    "metrics_port": "Prometheus metrics port (/metrics); -1 to turn metrics off.",
    "control_mode": f"Model control mode: {' or '.join(CONTROL_MODES)} (as Triton's --model-control-mode).",
    "load_model": "In explicit mode, a model to load at start (repeatable; '*' for all).",
    "poll_interval": "Seconds between repository polls in poll mode (0: load once, never poll).",
    "session_threads": (
        "ONNX Runtime intra-op threads per model instance, where config.pbtxt sets no "
        "intra_op_thread_count (0: the CPUs divided among the model's instances)."
    ),
}


def port_or_off(port: int) -> int | None:
    return None if port < 0 else port
