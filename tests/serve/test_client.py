"""``ServedPredictor``: detections from a served detector, in image pixels, and the version that answered."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from cvcycle.errors import NotFound
from cvcycle.serve.client import ServedPredictor

Detector = Callable[[tuple[int, int], float], bytes]
CLASSES = {"classes": json.dumps(["person", "fallen_person"])}


def test_detections_come_back_in_image_pixels_from_the_newest_version(
    serve: Any, publish: Any, detector: Detector
) -> None:
    publish("detector", 1, detector((32, 48), 0.5), max_batch_size=2, parameters=CLASSES)
    server = serve(poll_interval=0.05)
    white = np.full((60, 90, 3), 255, np.uint8)
    dark = np.zeros((30, 40, 3), np.uint8)
    with ServedPredictor(server.url, "detector") as predictor:
        assert predictor.input_size == (32, 48) and predictor.classes == ("person", "fallen_person")
        found = predictor.predict([white, dark, white])  # three images: two requests of at most two
        assert [len(d) for d in found] == [1, 0, 1]
        np.testing.assert_allclose(found[0].xyxy, [[0, 0, 45, 30]], atol=1e-3)  # half the 90x60 image
        assert found[0].class_name(0) == "fallen_person" and predictor.last_version == "1"

        publish("detector", 2, detector((32, 48), 1.0), max_batch_size=2, parameters=CLASSES)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            predictor.predict([white])
            if predictor.last_version == "2":
                break
            time.sleep(0.02)
        np.testing.assert_allclose(predictor.predict([white])[0].xyxy, [[0, 0, 90, 60]], atol=1e-3)


def test_unknown_models_and_absent_servers_are_named(serve: Any, publish: Any, detector: Detector) -> None:
    publish("detector", 1, detector((8, 8), 1.0), parameters=CLASSES)
    server = serve()
    with pytest.raises(NotFound, match="unknown model 'nope'"):
        ServedPredictor(server.url, "nope")
    with pytest.raises(NotFound, match=r"no inference server answers at http://127\.0\.0\.1:9"):
        ServedPredictor("127.0.0.1:9", "detector")
