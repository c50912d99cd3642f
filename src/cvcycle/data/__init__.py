"""Datasets: media, frames, labels, action segments, tags, versions, slices, diffs, manifests, and
which blobs their rows reference (store verification and garbage collection)."""
