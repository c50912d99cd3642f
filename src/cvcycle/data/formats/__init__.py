"""Readers and writers of annotation formats (COCO, CVAT, YOLO, MOT, ActivityNet).

:mod:`~cvcycle.data.formats.paths` holds the one rule every reader applies to the file names it
reads: they resolve inside the folder the user gave.
"""
