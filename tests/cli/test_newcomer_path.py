"""The newcomer's path from the README, through the real CLI, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cvcycle.cli.main import app
from cvcycle.settings import get_settings

runner = CliRunner()


def cv(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"cvcycle {' '.join(args)} -> {result.exit_code}\n{result.output}"
    return result.output


def cvj(*args: str) -> Any:
    return json.loads(cv(*args, "--json"))


def test_newcomer_path(home: Path, tmp_path: Path) -> None:
    cv("init")
    cv("init")  # idempotent
    day = cvj("synth", "--dataset", "home", "--clips", "4", "--lighting", "day", "--seed", "1")
    assert cvj("dataset", "commit", "home", "-m", "day scenes")["version"] == 1
    night = cvj("synth", "--dataset", "home", "--clips", "2", "--lighting", "night", "--dogs", "--seed", "2")
    assert cvj("dataset", "commit", "home", "-m", "night and dogs")["version"] == 2
    assert [v["version"] for v in cvj("dataset", "log", "home")] == [2, 1]

    diff = cvj("dataset", "diff", "home", "1", "2")
    new_frames = sum(c["frames"] for c in night["clips"])
    assert diff["frames"]["added"]["count"] == new_frames and diff["frames"]["removed"]["count"] == 0
    assert diff["labels"]["added"]["count"] == night["boxes"]
    assert diff["labels"]["removed"]["count"] == 0 and diff["labels"]["changed"]["count"] == 0
    assert diff["segments"]["added"]["count"] == night["segments"]
    at1 = cvj("dataset", "show", "home@1")
    assert at1["frames"] == sum(c["frames"] for c in day["clips"]) and at1["labels"]["total"] == day["boxes"]

    out = tmp_path / "out"
    val = cvj("dataset", "show", "home@1", "--slice", "val")
    assert val["frames"] > 0, "the day scenes must have a validation clip"
    cv("export", "home@1", "--slice", "val", "--format", "coco", "-o", str(out))
    cv("import", "coco", str(out / "annotations.json"), "--images", str(out / "images"), "--dataset", "copy")
    copy = cvj("dataset", "show", "copy")
    assert copy["frames"] == val["frames"]
    assert copy["labels"] == val["labels"]

    slices = {s["name"]: s for s in cvj("dataset", "slices", "home@2")}
    assert sum(slices[s]["frame_count"] for s in ("train", "val", "test")) == slices["all"]["frame_count"]
    manifest = cvj("dataset", "materialize", "home@2", "--slice", "train")
    assert manifest["frames"] == slices["train"]["frame_count"] and not manifest["cached"]
    assert cvj("dataset", "materialize", "home@2", "--slice", "train")["cached"]


def test_synth_again_with_the_same_seed_changes_nothing(home: Path) -> None:
    cv("init")
    first = cvj("synth", "--dataset", "home", "--clips", "1", "--seed", "5")
    again = cvj("synth", "--dataset", "home", "--clips", "1", "--seed", "5")
    assert first["boxes"] > 0
    assert [c["status"] for c in again["clips"]] == ["unchanged"] and again["boxes"] == 0


def test_an_uninitialised_home_says_to_run_init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CVCYCLE_HOME", str(tmp_path / "fresh"))
    monkeypatch.delenv("CVCYCLE_DB_URL", raising=False)
    get_settings.cache_clear()
    try:
        output = cv("dataset", "show", "home", code=2)
        assert "is empty" in output and "cvcycle init" in output
        cv("init")
        assert "dataset 'home' does not exist" in cv("dataset", "show", "home", code=2)
    finally:
        get_settings.cache_clear()


def test_user_errors_are_one_line_with_exit_code_2(home: Path) -> None:
    cv("init")
    assert "dataset 'nope' does not exist" in cv("dataset", "show", "nope", code=2)
    cvj("synth", "--dataset", "home", "--clips", "1", "--seed", "3")
    cv("dataset", "commit", "home", "-m", "v1")
    assert "version 9 of dataset 'home' does not exist" in cv("dataset", "show", "home@9", code=2)
    assert "nothing to commit" in cv("dataset", "commit", "home", "-m", "again", code=2)
    assert "unknown export format" in cv("export", "home@1", "--format", "voc", "-o", "x", code=2)
    assert "is not key=value" in cv("dataset", "show", "home@1", "--slice", "lighting=", code=2)
    assert "lighting 'noon'" in cv("synth", "--dataset", "home", "--lighting", "noon", code=2).lower()


def test_ingest_reports_bad_files_and_keeps_the_good(home: Path, tmp_path: Path) -> None:
    import numpy as np

    from cvcycle.media import write_video

    cv("init")
    good = tmp_path / "good.mp4"
    write_video([np.full((32, 48, 3), i * 20, np.uint8) for i in range(6)], good, fps=5)
    bad = tmp_path / "bad.mp4"
    bad.write_text("garbage")
    output = cv("ingest", str(bad), str(good), "--dataset", "cams", "--source", "cam-3", code=2)
    assert "bad.mp4" in output
    shown = cvj("dataset", "show", "cams")
    assert shown["frames"] == 6 and shown["media"] == 1


def test_synth_out_writes_mp4s_and_a_coco_export(home: Path, tmp_path: Path) -> None:
    import av

    cv("init")
    out = tmp_path / "synth-out"
    result = cvj(
        "synth",
        "--dataset",
        "home",
        "--clips",
        "2",
        "--lighting",
        "dim",
        "--dogs",
        "--seed",
        "4",
        "--out",
        str(out),
    )
    videos = sorted((out / "videos").glob("*.mp4"))
    assert [v.stem for v in videos] == sorted(c["clip"] for c in result["clips"])
    with av.open(str(videos[0])) as container:
        assert sum(1 for _ in container.decode(video=0)) == result["clips"][0]["frames"]
    doc = json.loads((out / "annotations.json").read_text())
    assert len(doc["images"]) == sum(c["frames"] for c in result["clips"])
    assert len(doc["annotations"]) == result["boxes"]
    assert all((out / "images" / image["file_name"]).is_file() for image in doc["images"])
    assert {image["cvcycle"]["attributes"]["lighting"] for image in doc["images"]} == {"dim"}
