"""Feedback from production: events, operators' reports, annotation tasks, review sampling, statistics.

``events`` reads JSON Lines feeds of what models emitted; ``reports`` records operators' verdicts
(confirmed, false, inaccurate or missed detection) and samples empty frames for missed-detection
review; ``tasks`` turns verdicts into annotation work whose result lands in a dataset's working
copy; ``stats`` gives false and missed detection rates per model version, source and day.
"""
