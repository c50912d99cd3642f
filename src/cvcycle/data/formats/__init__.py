"""Readers and writers of annotation formats: COCO today (CVAT, YOLO, MOT and ActivityNet are to come).

:mod:`~cvcycle.data.formats.paths` holds the one rule every reader applies to the file names it
reads: they resolve inside the folder the user gave.
"""
