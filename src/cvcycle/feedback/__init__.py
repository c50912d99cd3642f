"""Feedback from production: events, operators' reports, review sampling, statistics.

``events`` reads JSON Lines feeds of what models emitted; ``reports`` records operators' verdicts
(confirmed, false, inaccurate or missed detection), opens annotation tasks on them (the tasks are
:mod:`cvcycle.annotate.tasks`') and samples empty frames for missed-detection review; ``stats``
gives false and missed detection rates per model version, source and day.
"""
