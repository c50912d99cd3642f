"""``cvcycle dataset ...``: commit, log, show, diff, slices and manifests."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from cvcycle.cli.common import JsonOption, console, database, handle_errors, plain, print_json
from cvcycle.data.catalog import slices_with_counts
from cvcycle.data.manifest import materialize_manifest
from cvcycle.data.selection import resolve_selection
from cvcycle.data.slices import delete_slice, save_slice
from cvcycle.data.snapshot import show_dataset
from cvcycle.data.versions import KeyedRowsDiff, RowsDiff, commit_version, diff_versions, list_versions
from cvcycle.errors import InvalidInput
from cvcycle.refs import format_ref
from cvcycle.settings import get_settings


@handle_errors
def commit(
    name: str = typer.Argument(..., help="Dataset name."),
    message: str = typer.Option(..., "-m", "--message", help="What this version changes."),
    author: str = typer.Option("", "--author", help="Who commits."),
    as_json: bool = JsonOption,
) -> None:
    """Make the working copy the next version (cost follows the change, not the dataset)."""
    with database().write() as session:
        info = commit_version(session, name, message, author)
    if as_json:
        print_json(info)
        return
    change = info.stats["change"]
    console.print(
        f"{plain(format_ref(name, info.version))}: +{change['frames']['added']} frames, "
        f"+{sum(change['labels']['added'].values())} -{sum(change['labels']['removed'].values())} boxes, "
        f"+{sum(change['segments']['added'].values())} segments",
        highlight=False,
    )


@handle_errors
def log(name: str = typer.Argument(..., help="Dataset name."), as_json: bool = JsonOption) -> None:
    """The versions of a dataset, newest first."""
    with database().read() as session:
        versions = list_versions(session, name)
    if as_json:
        print_json(versions)
        return
    table = Table("version", "created", "frames", "boxes", "segments", "message")
    for v in versions:
        totals = v.stats["totals"]
        table.add_row(
            str(v.version),
            v.created_at.strftime("%Y-%m-%d %H:%M"),
            str(totals["frames"]),
            str(totals["labels"]),
            str(totals["segments"]),
            plain(v.message),
        )
    console.print(table)


@handle_errors
def show(
    ref: str = typer.Argument(..., help="NAME@V, NAME@latest, or NAME for the working copy."),
    slice: str | None = typer.Option(
        None, "--slice", help="A slice name or a filter such as lighting=night."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Frames, media, and boxes and segments per class of a version."""
    with database().read() as session:
        data = show_dataset(session, ref, slice)
    if as_json:
        print_json(data)
        return
    where = f"{data.dataset} (working copy)"
    if data.version:
        where = format_ref(data.dataset, data.version)
    console.print(f"{plain(where)}  slice={plain(data.slice.name)}", highlight=False)
    console.print(f"frames {data.frames}  media {data.media}  splits {plain(data.splits)}", highlight=False)
    for kind, counts in (("labels", data.labels), ("segments", data.segments)):
        per_class = ", ".join(f"{k}={v}" for k, v in counts.per_class.items()) or "-"
        console.print(f"{kind} {counts.total}: {plain(per_class)}", highlight=False)


@handle_errors
def diff(
    name: str = typer.Argument(..., help="Dataset name."),
    old: str = typer.Argument(..., help="Older version number."),
    new: str = typer.Argument("working", help="Newer version number, or 'working'."),
    as_json: bool = JsonOption,
) -> None:
    """Frames, boxes, segments and tags added, removed or changed between two versions."""
    with database().read() as session:
        data = diff_versions(session, name, old, new)
    if as_json:
        print_json(data)
        return
    console.print(f"{plain(name)} {plain(old)} -> {plain(new)}", highlight=False)
    for kind in ("frames", "labels", "segments", "tags"):
        part: RowsDiff | KeyedRowsDiff = getattr(data, kind)
        changed = f" ~{part.changed.count}" if isinstance(part, KeyedRowsDiff) else ""
        console.print(f"  {kind:9} +{part.added.count} -{part.removed.count}{changed}", highlight=False)


@handle_errors
def slices(
    ref: str = typer.Argument(..., help="NAME@V, NAME@latest, or NAME for the working copy."),
    as_json: bool = JsonOption,
) -> None:
    """The slices of a version with their frame counts."""
    with database().read() as session:
        rows = slices_with_counts(session, ref)
    if as_json:
        print_json(rows)
        return
    table = Table("slice", "kind", "definition", "frames")
    for row in rows:
        definition = row.filter or (f"{row.frames} listed frames" if row.frames is not None else "")
        table.add_row(plain(row.name), row.kind, plain(definition), str(row.frame_count))
    console.print(table)


@handle_errors
def slice_cmd(
    name: str = typer.Argument(..., help="Dataset name."),
    slice_name: str = typer.Argument(..., help="Slice name."),
    filter: str | None = typer.Option(None, "--filter", help="e.g. lighting=night,tag=hard_negative"),
    frames: Path | None = typer.Option(None, "--frames", help="A file of frame ids, one per line."),
    delete: bool = typer.Option(False, "--delete", help="Remove the slice from the working copy."),
    as_json: bool = JsonOption,
) -> None:
    """Create, redefine or delete a named slice in the working copy (commit to version it)."""
    frame_ids = None
    if frames is not None:
        try:
            frame_ids = [int(line) for line in frames.read_text().split() if line]
        except ValueError as exc:
            raise InvalidInput(f"{frames}: every line must be a frame id ({exc})") from exc
    with database().write() as session:
        if delete:
            delete_slice(session, name, slice_name)
            spec = None
        else:
            spec = save_slice(session, name, slice_name, filter=filter, frame_ids=frame_ids)
    if as_json:
        print_json(spec.info if spec else {"deleted": slice_name})
    else:
        console.print(
            plain(f"slice {slice_name} {'deleted' if spec is None else 'saved'} in {name} (working copy)"),
            highlight=False,
        )


@handle_errors
def materialize(
    ref: str = typer.Argument(..., help="NAME@V or NAME@latest."),
    slice: str | None = typer.Option(None, "--slice", help="A slice name or a filter."),
    as_json: bool = JsonOption,
) -> None:
    """Write the Parquet training manifest of a version (cached per version and slice)."""
    with database().read() as session:
        selection = resolve_selection(session, ref, slice)
        manifest = materialize_manifest(session, selection, get_settings().manifests_dir)
    if as_json:
        print_json(manifest.to_json())
        return
    state = "cached" if manifest.cached else "written"
    console.print(f"{plain(manifest.path)} ({state}): {manifest.frames} frames, {manifest.boxes} boxes")


def register(app: typer.Typer) -> None:
    group = typer.Typer(no_args_is_help=True)
    group.command()(commit)
    group.command()(log)
    group.command()(show)
    group.command()(diff)
    group.command()(slices)
    group.command("slice")(slice_cmd)
    group.command()(materialize)
    app.add_typer(group, name="dataset", help="Versions, diffs, slices and manifests of datasets.")
