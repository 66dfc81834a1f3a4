"""``connecto verify RUN_OR_VOLUME``: re-read every finished block and compare it with its checksums.

One line per problem (the chunk file, what is wrong, expected against found); exit 1 when
there is any, else 0 with a summary line. ``--repair`` forgets the damaged blocks, so
rerunning the stage that wrote them recomputes exactly those.
"""

from __future__ import annotations

import click


@click.command()
@click.argument("path", metavar="RUN_OR_VOLUME")
@click.option("--repair", is_flag=True,
              help="forget the blocks that hold damaged chunks, so a rerun of their stage recomputes them")
def verify(path: str, repair: bool) -> None:
    """Check every chunk that finished blocks under RUN_OR_VOLUME (a volume or a run directory) wrote
    against the checksum in its done-marker, and every recorded input against its identity."""
    from chunks.verify import verify as run

    report = run(path, repair=repair)
    for note in report.notes:
        click.echo(f"note: {note}")
    for problem in report.problems:
        click.echo(str(problem))
    for line in report.repaired:
        click.echo(line)
    if not report.runs:
        click.echo(f"nothing to verify: no done-markers under {path}")
        return
    click.echo(report.summary(path))
    if report.problems:
        raise click.exceptions.Exit(1)
