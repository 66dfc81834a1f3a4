"""``proofread``: a click command group (merge, split, undo, redo, log, show).

Segments are named by id or by a voxel point ``Z,Y,X`` (the segment whose fragment is there).
Each edit prints the version it made, the new segment ids and a Neuroglancer state to
check it (the raw image and the edited segments). Exit codes: 0 done, 1 refused (bad id, unsplittable), 3 conflict with a newer
edit (look again and retry), 2 usage error.
"""

from __future__ import annotations

import getpass
import json

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
        click.option("--threshold", type=click.FloatRange(0, 1), default=None,
                     help="Agglomeration threshold that defines version 0 (read once, to start the log) "
                          "[default: the run's threshold in RUN_DIR/run.json]."),
        click.option("--database", default=None, help="Edit log: SQLite path or postgresql:// URL "
                     "[default: RUN_DIR/proofreading.sqlite]."),
        click.option("--ng-source", "ng_source", default=None,
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


def _ng_state(params: dict, segments: dict, version: int, points=()) -> dict:
    from . import neuroglancer

    return neuroglancer.run_state(params["run_dir"], segments, name=f"segments v{version}",
                                  fragments_source=params["ng_source"], points=points)


def _report(pr, edit, params: dict, points=()) -> None:
    from . import neuroglancer

    segments = {s: pr.fragments_of(s) for s in edit.new_segments}
    ng_state = _ng_state(params, segments, edit.version, points)
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


POINT_OR_ID = "a segment id, or a voxel point Z,Y,X (the segment there)"


def _id_or_point(what: str):
    def convert(ctx, param, value):
        if value is None:
            return None
        from .points import is_point, parse_point

        try:
            if is_point(value):
                return parse_point(value, what)
            number = int(value)
        except ValueError as exc:
            raise click.BadParameter(str(exc) if is_point(value) else
                                     f"{value!r} is not {POINT_OR_ID}") from None
        if number < 1:
            raise click.BadParameter(f"{value!r} is not {POINT_OR_ID} (ids are >= 1)")
        return number

    return convert


def _points(what: str):
    def convert(ctx, param, values):
        from .points import parse_point

        try:
            return tuple(parse_point(v, what) for v in values)
        except ValueError as exc:
            raise click.BadParameter(str(exc)) from None

    return convert


@proofread.command()
@_run_options
@click.argument("a", metavar="A", callback=_id_or_point("A"))
@click.argument("b", metavar="B", callback=_id_or_point("B"))
@click.option("--fragments", is_flag=True, help="A and B are fragment ids, not segment ids.")
@click.option("--base-version", type=click.IntRange(min=0), default=None,
              help="The version you looked at (conflicts with later edits of these segments are refused).")
@_errors
def merge(a, b, fragments, base_version, **params) -> None:
    """Merge the segments A and B, each a segment id or a voxel point Z,Y,X (the segment there).

    A point is a voxel index z,y,x of the run's volumes (Neuroglancer shows it as x,y,z).
    """
    from .points import fragments_at

    points = [p for p in (a, b) if isinstance(p, tuple)]
    by_point = dict(zip(points, fragments_at(params["run_dir"], points).tolist())) if points else {}
    with _open(params) as pr:
        if fragments or len(points) == 2:  # two fragments: the merge remembers the pair it joined
            ids = [by_point.get(x, x) for x in (a, b)]
            edit = pr.merge(*ids, by="fragment", base_version=base_version)
        else:
            ids = [int(pr.segment_of(by_point[x], base_version)) if isinstance(x, tuple) else x for x in (a, b)]
            edit = pr.merge(*ids, by="segment", base_version=base_version)
        _report(pr, edit, params, points)


@proofread.command()
@_run_options
@click.option("--source", "source_points", multiple=True, metavar="Z,Y,X", callback=_points("--source"),
              help="A voxel point that stays on the source side (repeatable).")
@click.option("--sink", "sink_points", multiple=True, metavar="Z,Y,X", callback=_points("--sink"),
              help="A voxel point that goes to the sink side (repeatable).")
@click.option("--source-fragment", "sources", type=click.IntRange(min=1), multiple=True,
              help="A fragment that stays on the source side (repeatable).")
@click.option("--sink-fragment", "sinks", type=click.IntRange(min=1), multiple=True,
              help="A fragment that goes to the sink side (repeatable).")
@click.option("--segment", type=click.IntRange(min=1), default=None, help="The segment to split [default: the sources'].")
@click.option("--base-version", type=click.IntRange(min=0), default=None,
              help="The version you looked at (conflicts with later edits of this segment are refused).")
@_errors
def split(source_points, sink_points, sources, sinks, segment, base_version, **params) -> None:
    """Split a segment between source and sink points (or fragments) by a minimum cut on affinity."""
    from .points import fragments_at

    if not (source_points or sources) or not (sink_points or sinks):
        raise click.UsageError("give at least one source (--source Z,Y,X or --source-fragment ID) and one sink "
                               "(--sink Z,Y,X or --sink-fragment ID)")
    if source_points:
        sources = (*fragments_at(params["run_dir"], source_points).tolist(), *sources)
    if sink_points:
        sinks = (*fragments_at(params["run_dir"], sink_points).tolist(), *sinks)
    with _open(params) as pr:
        edit = pr.split(segment, list(sources), list(sinks), base_version=base_version)
        _report(pr, edit, params, (*source_points, *sink_points))


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
@click.argument("segment", metavar="[SEGMENT | Z,Y,X]", required=False, callback=_id_or_point("SEGMENT"))
@click.option("--fragment", type=click.IntRange(min=1), default=None, help="Show the segment of this fragment.")
@click.option("--version", type=click.IntRange(min=0), default=None, help="At this version [default: the head].")
@_errors
def show(segment, fragment, version, **params) -> None:
    """Show a segment, the segment at a voxel point Z,Y,X, or a fragment's segment: its fragments and a
    Neuroglancer state."""
    from . import neuroglancer
    from .points import fragments_at

    if (segment is None) == (fragment is None):
        raise click.UsageError("give either SEGMENT (an id or a voxel point Z,Y,X) or --fragment")
    point = segment if isinstance(segment, tuple) else None
    if point is not None:
        fragment = int(fragments_at(params["run_dir"], [point])[0])
    with _open(params) as pr:
        mapping = pr.mapping(version) if version is not None else pr.mapping()
        segment = int(mapping.segment_of(fragment)) if fragment is not None else segment
        if not mapping.has_segment(segment):
            raise ValueError(f"segment {segment} does not exist at version {mapping.version}")
        fragments = mapping.fragments_of(segment)
        ng_state = _ng_state(params, {segment: fragments}, mapping.version, [point] if point else ())
        if params["as_json"]:
            record = {"version": mapping.version, "segment": int(segment)}
            if point is not None:
                record["point_zyx"] = list(point)
            if fragment is not None:
                record["fragment"] = int(fragment)
            click.echo(json.dumps({**record, "fragments": fragments.tolist(), "neuroglancer": ng_state}))
            return
        shown = " ".join(map(str, fragments[:50].tolist())) + (" ..." if len(fragments) > 50 else "")
        where = f" (at point {','.join(map(str, point))})" if point is not None else ""
        click.echo(f"segment {segment}{where} at version {mapping.version}: {len(fragments)} fragments: {shown}")
        click.echo("neuroglancer state: " + json.dumps(ng_state, separators=(",", ":")))
        if params["ng_prefix"]:
            click.echo("neuroglancer link: " + neuroglancer.link(ng_state, params["ng_prefix"]))


main = proofread
