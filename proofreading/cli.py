"""``proofread``: a click command group (merge, split, undo, redo, log, show).

Each edit prints the version it made, the new segment ids and a Neuroglancer state to
check it. Exit codes: 0 done, 1 refused (bad id, unsplittable), 3 conflict with a newer
edit (look again and retry), 2 usage error.
"""

from __future__ import annotations

import getpass
import json
import os

import click

EXIT_CONFLICT = 3


class _Refused(click.ClickException):
    pass


class _Conflict(click.ClickException):
    exit_code = EXIT_CONFLICT


def _default_author() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _run_options(function):
    options = [
        click.argument("run_dir", type=click.Path(file_okay=False)),
        click.option("--author", envvar="PROOFREADING_AUTHOR", default=_default_author, show_default="login name",
                     help="Who makes the edit (also $PROOFREADING_AUTHOR)."),
        click.option("--threshold", type=float, default=None,
                     help="Agglomeration threshold that defines version 0 (needed once, to start the log)."),
        click.option("--database", default=None, help="Edit log: SQLite path or postgresql:// URL "
                     "[default: RUN_DIR/proofreading.sqlite]."),
        click.option("--source", "ng_source", default=None,
                     help="Neuroglancer source of the fragment volume [default: zarr://file://RUN_DIR/fragments]."),
        click.option("--ng-prefix", default=None, help="Print a Neuroglancer link with this host prefix too."),
        click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def _open(ctx_params: dict):
    from .proofreader import Proofreader

    return Proofreader.open(ctx_params["run_dir"], ctx_params["author"], threshold=ctx_params["threshold"],
                            database=ctx_params["database"])


def _errors(function):
    import functools

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        from .errors import ConflictError

        try:
            return function(*args, **kwargs)
        except ConflictError as exc:
            raise _Conflict(str(exc)) from None
        except (ValueError, FileNotFoundError) as exc:
            raise _Refused(str(exc)) from None

    return wrapper


def _report(pr, edit, params: dict) -> None:
    from . import neuroglancer

    segments = {s: pr.fragments_of(s) for s in edit.new_segments}
    source = params["ng_source"] or f"zarr://file://{os.path.abspath(params['run_dir'])}/fragments"
    ng_state = neuroglancer.state(segments, source, name=f"segments v{edit.version}")
    if params["as_json"]:
        click.echo(json.dumps({**edit.summary(), "neuroglancer": ng_state}))
        return
    what = edit.operation if edit.target is None else f"{edit.operation} of edit {edit.target}"
    click.echo(f"version {edit.version}: {what} by {edit.author} (base version {edit.base_version})")
    click.echo(f"removed segments: {' '.join(map(str, edit.removed_segments))}")
    sizes = ", ".join(f"{s} ({len(f)} fragments)" for s, f in segments.items())
    click.echo(f"new segments: {sizes}")
    click.echo("neuroglancer state: " + json.dumps(ng_state, separators=(",", ":")))
    if params["ng_prefix"]:
        click.echo("neuroglancer link: " + neuroglancer.link(ng_state, params["ng_prefix"]))


@click.group("proofread")
def proofread() -> None:
    """Versioned merge/split edits on a run's fragment -> segment mapping (undo, redo, log)."""


@proofread.command()
@_run_options
@click.argument("a", type=click.IntRange(min=1))
@click.argument("b", type=click.IntRange(min=1))
@click.option("--fragments", is_flag=True, help="A and B are fragment ids (points), not segment ids.")
@click.option("--base-version", type=click.IntRange(min=0), default=None,
              help="The version you looked at (conflicts with later edits of these segments are refused).")
@_errors
def merge(a, b, fragments, base_version, **params) -> None:
    """Merge the segments A and B."""
    with _open(params) as pr:
        edit = pr.merge(a, b, by="fragment" if fragments else "segment", base_version=base_version)
        _report(pr, edit, params)


@proofread.command()
@_run_options
@click.option("--source-fragment", "sources", type=click.IntRange(min=1), multiple=True, required=True,
              help="A fragment that stays on the source side (repeatable).")
@click.option("--sink-fragment", "sinks", type=click.IntRange(min=1), multiple=True, required=True,
              help="A fragment that goes to the sink side (repeatable).")
@click.option("--segment", type=click.IntRange(min=1), default=None, help="The segment to split [default: the sources'].")
@click.option("--base-version", type=click.IntRange(min=0), default=None,
              help="The version you looked at (conflicts with later edits of this segment are refused).")
@_errors
def split(sources, sinks, segment, base_version, **params) -> None:
    """Split a segment between source and sink fragments by a minimum cut on affinity."""
    with _open(params) as pr:
        edit = pr.split(segment, list(sources), list(sinks), base_version=base_version)
        _report(pr, edit, params)


def _toggle_command(name: str):
    @proofread.command(name, help=f"{name.capitalize()} your latest edit (or the edit at --version).")
    @_run_options
    @click.option("--version", "target", type=click.IntRange(min=1), default=None, help=f"The edit to {name}.")
    @_errors
    def command(target, **params) -> None:
        with _open(params) as pr:
            edit = getattr(pr, name)(target)
            _report(pr, edit, params)

    return command


undo = _toggle_command("undo")
redo = _toggle_command("redo")


@proofread.command("log")
@_run_options
@click.option("--after", type=click.IntRange(min=0), default=0, help="Only edits after this version.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Only the last N edits.")
@click.option("--by", "by_author", default=None, help="Only edits by this author.")
@click.option("--segment", type=click.IntRange(min=1), default=None, help="Only edits that removed or made this segment.")
@_errors
def log_command(after, limit, by_author, segment, **params) -> None:
    """List the edits, oldest first."""
    with _open(params) as pr:
        edits = pr.log(after=after, author=by_author, segment=segment)
        edits = edits[-limit:] if limit else edits
        if params["as_json"]:
            click.echo(json.dumps([e.summary() for e in edits]))
            return
        click.echo(f"{'version':>7} {'base':>5}  {'time':<29} {'author':<12} {'operation':<9} removed -> new")
        for e in edits:
            what = e.operation if e.target is None else f"{e.operation} {e.target}"
            click.echo(f"{e.version:>7} {e.base_version:>5}  {e.created_at:<29} {e.author:<12} {what:<9} "
                       f"{' '.join(map(str, e.removed_segments))} -> {' '.join(map(str, e.new_segments))}")


@proofread.command()
@_run_options
@click.argument("segment", type=click.IntRange(min=1), required=False)
@click.option("--fragment", type=click.IntRange(min=1), default=None, help="Show the segment of this fragment.")
@click.option("--version", type=click.IntRange(min=0), default=None, help="At this version [default: the head].")
@_errors
def show(segment, fragment, version, **params) -> None:
    """Show a segment (or a fragment's segment): its fragments and a Neuroglancer state."""
    from . import neuroglancer

    if (segment is None) == (fragment is None):
        raise click.UsageError("give either SEGMENT or --fragment")
    with _open(params) as pr:
        mapping = pr.mapping(version) if version is not None else pr.mapping()
        segment = segment if fragment is None else mapping.segment_of(fragment)
        fragments = mapping.fragments_of(segment)
        source = params["ng_source"] or f"zarr://file://{os.path.abspath(params['run_dir'])}/fragments"
        ng_state = neuroglancer.state({segment: fragments}, source, name=f"segments v{mapping.version}")
        if params["as_json"]:
            click.echo(json.dumps({"version": mapping.version, "segment": int(segment),
                                   "fragments": fragments.tolist(), "neuroglancer": ng_state}))
            return
        shown = " ".join(map(str, fragments[:50].tolist())) + (" ..." if len(fragments) > 50 else "")
        click.echo(f"segment {segment} at version {mapping.version}: {len(fragments)} fragments: {shown}")
        click.echo("neuroglancer state: " + json.dumps(ng_state, separators=(",", ":")))
        if params["ng_prefix"]:
            click.echo("neuroglancer link: " + neuroglancer.link(ng_state, params["ng_prefix"]))


main = proofread
