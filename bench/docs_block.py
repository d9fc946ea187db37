"""Writing a benchmark's table into a doc: the text between `<!-- NAME:begin -->` and `<!-- NAME:end -->`."""

from __future__ import annotations

import re
from pathlib import Path


def write_block(path: Path, name: str, text: str) -> None:
    """Replace the block `name` of `path` with `text`; exit with a message when the doc has no such block."""
    doc = path.read_text()
    pat = re.compile(rf"(<!-- {re.escape(name)}:begin -->\n).*?(<!-- {re.escape(name)}:end -->)", re.S)
    if not pat.search(doc):
        raise SystemExit(f"{path} has no <!-- {name}:begin --> ... <!-- {name}:end --> block")
    path.write_text(pat.sub(lambda m: m.group(1) + text + m.group(2), doc))
