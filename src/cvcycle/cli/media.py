"""``cvcycle ingest``, ``synth``, ``import`` and ``export``: getting media and labels in and out."""

from __future__ import annotations

from pathlib import Path

import typer

from cvcycle.cli.common import (
    JsonOption,
    console,
    database,
    err_console,
    file_progress,
    handle_errors,
    plain,
    print_json,
    store,
)
from cvcycle.data.ingest import expand_paths, ingest_files
from cvcycle.data.interchange import export_coco, import_coco
from cvcycle.data.synthetic import add_synthetic_clips
from cvcycle.errors import InvalidInput
from cvcycle.refs import parse_dataset_ref

EXPORT_FORMATS = ("coco",)


@handle_errors
def ingest(
    paths: list[Path] = typer.Argument(..., help="Video or image files, or directories of them."),
    dataset: str = typer.Option(
        ..., "--dataset", "-d", help="Dataset to add the frames to (created if new)."
    ),
    source: str = typer.Option("", "--source", help="Camera or source name, e.g. cam-3."),
    every: int = typer.Option(1, "--every", min=1, help="Keep every N-th frame of videos."),
    as_json: bool = JsonOption,
) -> None:
    """Ingest media into a dataset's working copy. Bad files are reported; the others go in."""
    with file_progress(not as_json) as progress:
        results = ingest_files(
            database(),
            store(),
            dataset,
            expand_paths(paths),
            source=source,
            every=every,
            progress=progress,
        )
    failed = [r for r in results if r.status == "failed"]
    if as_json:
        print_json([r.to_json() for r in results])
    else:
        for r in results:
            if r.status == "failed":
                err_console.print(f"[red]failed[/]  {plain(r.error)}", highlight=False)
            else:
                line = f"{r.status:9} {r.path}  {r.frames} frames  split={r.split}"
                console.print(plain(line), highlight=False)
    if failed:
        raise typer.Exit(2)


@handle_errors
def synth(
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to add the clips to (created if new)."),
    clips: int = typer.Option(4, "--clips", min=1, help="Number of clips."),
    lighting: str = typer.Option("day", "--lighting", help="day, dim or night."),
    dogs: bool = typer.Option(False, "--dogs/--no-dogs", help="Add dogs (hard negatives, no boxes)."),
    seed: int = typer.Option(0, "--seed", help="Seed: the same seed gives the same clips."),
    seconds: float = typer.Option(8.0, "--seconds", min=0.1, help="Length of each clip (10 fps)."),
    empty_share: float = typer.Option(
        0.0, "--empty-share", min=0.0, max=1.0, help="Share of clips with no people (dogs only, if any)."
    ),
    out: Path | None = typer.Option(None, "--out", help="Also write the MP4s and a COCO export here."),
    as_json: bool = JsonOption,
) -> None:
    """Render synthetic home-camera clips with exact ground truth into a dataset's working copy."""
    with file_progress(not as_json) as progress:
        result = add_synthetic_clips(
            database(),
            store(),
            dataset,
            clips=clips,
            lighting=lighting,
            dogs=dogs,
            seed=seed,
            seconds=seconds,
            empty_share=empty_share,
            out_dir=out,
            progress=progress,
        )
    if as_json:
        print_json(result.to_json())
        return
    for clip in result.clips:
        console.print(
            plain(
                f"{clip['status']:9} {clip['clip']}  {clip['frames']} frames  split={clip['split']}  "
                f"{clip['boxes']} boxes  {clip['segments']} segments"
            ),
            highlight=False,
        )
    console.print(
        f"{result.boxes} boxes and {result.segments} segments added to {plain(dataset)} (working copy)",
        highlight=False,
    )


@handle_errors
def import_coco_cmd(
    annotations: Path = typer.Argument(..., help="COCO annotations.json."),
    images: Path = typer.Option(..., "--images", help="Directory with the images named in the file."),
    dataset: str = typer.Option(..., "--dataset", "-d", help="Dataset to import into (created if new)."),
    as_json: bool = JsonOption,
) -> None:
    """Import a COCO detection file and its images. A malformed file imports nothing."""
    result = import_coco(database(), store(), annotations, images, dataset)
    if as_json:
        print_json(result)
        return
    console.print(
        f"imported {result['images']} images ({result['frames_added']} new frames), "
        f"{result['boxes_added']} boxes into {plain(dataset)} (working copy)",
        highlight=False,
    )


@handle_errors
def export_cmd(
    ref: str = typer.Argument(..., help="NAME@V, NAME@latest, or NAME for the working copy."),
    out: Path = typer.Option(..., "-o", "--out", help="Output directory."),
    format: str = typer.Option("coco", "--format", help="Export format: coco."),
    slice: str | None = typer.Option(
        None, "--slice", help="A slice name or a filter such as lighting=night."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Export a dataset version (through a slice) in another tool's format."""
    if format not in EXPORT_FORMATS:
        raise InvalidInput(f"unknown export format {format!r}", hint=f"one of: {', '.join(EXPORT_FORMATS)}")
    with database().read() as session:
        result = export_coco(session, store(), parse_dataset_ref(ref), slice, out)
    if as_json:
        print_json(result)
        return
    console.print(
        f"wrote {result['images']} images and {result['annotations']} boxes to {plain(out)}", highlight=False
    )


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(synth)
    app.command("export")(export_cmd)
    importers = typer.Typer(no_args_is_help=True)
    importers.command("coco")(import_coco_cmd)
    app.add_typer(importers, name="import", help="Import annotations from other tools' formats.")
