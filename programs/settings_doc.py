"""Writes the README's settings tables and the list of LW_* variables from the settings classes.

The classes are the one source of truth; the list is linewatch/program_variables.py, the
variables every program's start-up accepts (linewatch/startup.py says why a list).

    python -m programs.settings_doc           print the tables
    python -m programs.settings_doc --write   rewrite the README section between its markers, and the list
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from linewatch.settings import (
    FILE_SUFFIX, BaseProgramSettings, KafkaSettings, RedisSettings, known_variables, reads_from_file, variable,
)
from programs.registry import program_classes

BEGIN, END = "<!-- settings:begin -->", "<!-- settings:end -->"
ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
VARIABLES = ROOT / "linewatch" / "program_variables.py"


def _default(field) -> str:
    if field.default_factory is not None:
        value = field.default_factory()
        return "(computed)" if isinstance(value, str) else f"`{json.dumps(value)}`"
    value = field.default
    if value is None:
        return "unset"
    if hasattr(value, "value"):
        value = value.value
    return f"`{value}`"


def _table(fields: dict, skip: set[str] = frozenset()) -> list[str]:
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in fields.items():
        if name in skip:
            continue
        desc = (field.description or "").replace("|", "\\|")
        names = f"`{variable(name)}`"
        if reads_from_file(field):
            names += f" or `{variable(name)}{FILE_SUFFIX}` (a file holding it)"
        rows.append(f"| {names} | {_default(field)} | {desc} |")
    return rows


def render() -> str:
    shared = {"Every program: logging": BaseProgramSettings, "Kafka connection (worker, producer, alerts, demo)": KafkaSettings,
              "Redis connection (worker, alerts, demo, models, view)": RedisSettings}
    common = set(BaseProgramSettings.model_fields) | set(KafkaSettings.model_fields) | set(RedisSettings.model_fields)
    lines: list[str] = []
    base = set(BaseProgramSettings.model_fields)
    for title, cls in shared.items():
        lines += [f"#### {title}", "", *_table(cls.model_fields, skip=base if cls is not BaseProgramSettings else set()), ""]
    for program, cls in program_classes().items():
        lines += [f"#### `{program}` ({cls.__name__})", "", *_table(cls.model_fields, skip=common), ""]
    return "\n".join(lines).rstrip() + "\n"


def spliced(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render()}{END}{tail}"


def variables_module() -> str:
    """The text of linewatch/program_variables.py: every variable some program reads, sorted."""
    names = sorted(known_variables(*program_classes().values()))
    return "\n".join([
        '"""Every LW_* variable some linewatch program reads: the start-up check (linewatch/startup.py)',
        "refuses any other.",
        "",
        "Generated from the programs' settings classes by `python -m programs.settings_doc --write`;",
        'do not edit (tests/test_settings.py fails when it drifts)."""',
        "",
        "PROGRAM_VARIABLES = frozenset({",
        *(f'    "{name}",' for name in names),
        "})",
        "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    if args.write:
        README.write_text(spliced(README.read_text()))
        VARIABLES.write_text(variables_module())
    else:
        print(render())


if __name__ == "__main__":
    main()
