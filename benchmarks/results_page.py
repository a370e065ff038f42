"""The generated part of a docs page: a benchmark rewrites only the text between its markers
and leaves the prose around them as written."""

from __future__ import annotations

from pathlib import Path

END = "<!-- END results -->"


def begin_marker(script: str) -> str:
    return f"<!-- BEGIN results: written by benchmarks/{script} -->"


def write_section(path: Path, text: str, script: str, title: str | None = None) -> None:
    """Replace the text between ``script``'s markers in ``path``; a missing page is created
    (with ``title``) when a title is given, else refused like a page without markers."""
    begin = begin_marker(script)
    if path.exists():
        page = path.read_text()
    elif title is not None:
        page = f"# {title}\n\n{begin}\n{END}\n"
    else:
        raise SystemExit(f"{path} does not exist (it holds the prose around the results)")
    if begin not in page or END not in page:
        raise SystemExit(f"{path} has no results markers ({begin} ... {END})")
    head, rest = page.split(begin, 1)
    _, tail = rest.split(END, 1)
    path.write_text(f"{head}{begin}\n{text}\n{END}{tail}")
