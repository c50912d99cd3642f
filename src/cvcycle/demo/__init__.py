"""The demo: ``cvcycle demo``, which runs the whole loop on a fresh home, and the sample home that
tests and benchmarks fill (``sample_home``)."""
