"""Annotation work: tasks' assignments and drafts, tracks, overlap and agreement, review, spot checks.

An annotation task (``cvcycle.feedback.tasks``) is work on one frame (image mode) or one video
(video mode) of a dataset's working copy. Each annotator of a task holds an **assignment** whose
**draft** (boxes, action segments, tracks with keyframes) is saved with a revision, so a stale save
is refused instead of overwriting newer work. A submitted draft is written into the working copy
when it is accepted: directly, or after review when the task has overlap (k annotators) or a spot
check picked it.
"""
