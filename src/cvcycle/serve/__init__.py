"""Serving: a KServe v2 / Triton-protocol inference server on ONNX Runtime over a model repository.

It needs only the repository on disk (Triton's layout) and ONNX Runtime: no database, no torch,
so that it runs on a serving box. ``create_app`` builds the ASGI app, ``run_server`` serves it.
"""

from cvcycle.serve.app import create_app, run_server

__all__ = ["create_app", "run_server"]
