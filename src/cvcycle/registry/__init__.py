"""The model registry and the Triton model repository.

Versions, aliases and lineage (``versions``); loading a version for inference (``loading``, the one
module that imports torch); the Triton repository on disk (``layout``: folders, staging, the lock)
and its config text (``triton``); writing into it (``publish``, ``sync``); asking a server to load
(``server_control``); the UI's overview and the loop timeline. Import from the module you need.
The grammar of model references (``ModelRef``, ``parse_model_ref``) is ``cvcycle.refs``.
"""
