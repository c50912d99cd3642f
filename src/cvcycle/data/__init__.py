"""Datasets: media, frames, labels, action segments, tags, versions, slices, diffs, manifests."""
