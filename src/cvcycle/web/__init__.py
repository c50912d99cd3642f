"""The browser UI: static ES modules and CSS under ``static/``, served by :mod:`cvcycle.api`."""
