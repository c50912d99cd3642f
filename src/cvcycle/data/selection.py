"""Selections: a dataset version and a slice of it, resolved once and passed down as one value.

``cvcycle train --dataset home@3 --train-slice night`` and ``cvcycle evaluate --dataset home@3
--slice night`` name their data as text. The service that takes the text calls ``resolve_selection``
once: the reference is parsed and looked up (``home@latest`` becomes a number, a missing version is
a NotFound), the slice is looked up at that version and its filter parsed. Everything below takes
the ``Selection``: manifests (``cvcycle.data.manifest``), the frame and box queries
(``cvcycle.data.snapshot``) and evaluation sets (``cvcycle.evaluate.service``), so training and
evaluation read the same frames and boxes through the same query, ``Selection.frames_query``
(evaluation then leaves pseudo-labels out of its ground truth).

Several slices of one version share its resolved reference: pass the ``ResolvedRef`` of one
selection to ``resolve_selection`` to select another slice of the same version without looking it
up again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from cvcycle.data.datasets import ResolvedRef, resolve_ref
from cvcycle.data.slices import FramesQuery, SliceSpec, frames_query, slice_spec
from cvcycle.refs import DatasetRef, parse_dataset_ref


@dataclass(frozen=True)
class Selection:
    """A resolved dataset version (``ref``: dataset, version number, committed or not) and slice."""

    ref: ResolvedRef
    slice: SliceSpec

    @property
    def label(self) -> str:
        """``home@3 slice night``, or ``home (working copy) slice all``."""
        return f"{self.ref.label} slice {self.slice.name}"

    def frames_query(self) -> FramesQuery:
        """(frame id, media id, split) of the selected frames: the query every reader builds on."""
        return frames_query(self.ref, self.slice)


def resolve_selection(
    session: Session, dataset: str | DatasetRef | ResolvedRef, slice_text: str | None = None
) -> Selection:
    """Resolve ``dataset`` (``home``, ``home@3``, ``home@latest``, parsed or already resolved) and
    ``slice_text`` (None or ``all``, a split, a stored slice, or a filter such as ``lighting=night``)."""
    if isinstance(dataset, ResolvedRef):
        ref = dataset
    else:
        ref = resolve_ref(session, parse_dataset_ref(dataset) if isinstance(dataset, str) else dataset)
    return Selection(ref, slice_spec(session, ref, slice_text))
