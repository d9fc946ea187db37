"""testkit/ is support for tests and benchmarks only: no program may import it (it is neither in
the installed package nor in the image, so such an import would fail in production)."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROGRAM_PACKAGES = ("linewatch", "worker", "producer", "model_store", "view", "bridge", "programs")
SUPPORT = ("testkit", "tests", "bench")


def _imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_no_program_module_imports_test_or_bench_support() -> None:
    offenders = [
        f"{path.relative_to(REPO)} imports {module}"
        for package in PROGRAM_PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        for module in sorted(_imported_modules(path))
        if module.split(".")[0] in SUPPORT
    ]
    assert not offenders, offenders
    assert len(list((REPO / "worker").rglob("*.py"))) > 5  # the scan really read the programs
