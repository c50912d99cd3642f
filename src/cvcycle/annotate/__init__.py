"""Annotation work: tasks, their assignments and drafts, tracks, overlap and agreement, review, spot checks.

An annotation task (``tasks``) is work on one frame (image mode) or one video (video mode) of a
dataset's working copy; operators' reports open them, and so can anyone through the API. Each
annotator of a task holds an **assignment** whose **draft** (boxes, action segments, tracks with
keyframes) is saved with a revision, so a stale save is refused instead of overwriting newer work.
A submitted draft is written into the working copy when it is accepted: directly, or after review
when the task has overlap (k annotators) or a spot check picked it. Finished work is written only
if the task's frame did not change since the work began (the frame's revision, see
``data.labels.frame_revision``), so one task's accepted boxes are never silently replaced by another's.
"""
