"""Assertions shared by the tests."""

from __future__ import annotations

from pathlib import Path

from conftest import CliResult


def assert_user_error(result: CliResult, *fragments: str) -> None:
    """A user error: non-zero exit, one line on stderr naming the problem, no traceback."""
    assert result.code == 2, (result.code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error:"), lines
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def tree_snapshot(path: Path) -> dict[str, int]:
    """Every file under `path` with its size: compare before/after to prove nothing changed."""
    if not path.exists():
        return {}
    return {str(p.relative_to(path)): p.stat().st_size for p in sorted(path.rglob("*"))}



def run_edgelm(*args: str) -> None:
    """Run the CLI in-process for a fixture; it must succeed."""
    from edgelm.cli import main

    try:
        main(list(args))
    except SystemExit as exc:
        assert exc.code in (0, None), f"edgelm {' '.join(args)} exited {exc.code}"
