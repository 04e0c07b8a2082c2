"""The `edgelm` command line: one module per stage, joined here."""

from __future__ import annotations

import sys

import typer

from edgelm.cli import data, route, teacher
from edgelm.cli.device import bench_command, export_command, run_command
from edgelm.cli.distill import distill_command
from edgelm.cli.evaluate import eval_command
from edgelm.cli.metrics import metrics_command
from edgelm.cli.output import err
from edgelm.cli.report import report_command
from edgelm.cli.serve import serve_command
from edgelm.errors import EdgelmError

app = typer.Typer(
    name="edgelm",
    help="Distil multilingual language models into small bilingual students and run them on devices.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(teacher.app, name="teacher")
app.add_typer(data.app, name="data")
app.add_typer(route.app, name="route")
app.command("distill")(distill_command)
app.command("eval")(eval_command)
app.command("export")(export_command)
app.command("run")(run_command)
app.command("bench")(bench_command)
app.command("metrics")(metrics_command)
app.command("serve")(serve_command)
app.command("report")(report_command)


@app.command()
def version() -> None:
    """Print edgelm's version."""
    from edgelm.version import __version__

    print(__version__)


def main(argv: list[str] | None = None) -> None:
    """Entry point: user errors become one line on stderr and exit status 2, without a traceback."""
    try:
        app(args=argv, prog_name="edgelm")
    except EdgelmError as exc:
        from rich.markup import escape

        err.print(f"[red]error:[/red] {escape(str(exc))}", soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
