"""Serving: a KServe v2 / Triton-protocol inference server on ONNX Runtime over a model repository.

It needs only the repository on disk (Triton's layout) and ONNX Runtime: no database, no torch,
so that it runs on a serving box. ``InferenceServer`` runs HTTP, gRPC and metrics over one
repository, ``run_server`` until interrupted; ``create_app`` builds the HTTP app alone.
"""

from cvcycle.serve.app import create_app
from cvcycle.serve.server import InferenceServer, ServerOptions, run_server

__all__ = ["InferenceServer", "ServerOptions", "create_app", "run_server"]
