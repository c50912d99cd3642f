"""Readers and writers of annotation formats (COCO, CVAT, YOLO, MOT, ActivityNet)."""
