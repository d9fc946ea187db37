"""One start-up for every program: the environment check, the settings, exit 2 when they are wrong.

Each program parses its own command line (argparse: its flags are its own), then calls
`program_settings`, which

1. refuses any LW_* variable that no linewatch program reads: a typo stops the program instead of
   being ignored, while one environment file may still serve the whole line;
2. builds the program's settings class from the environment and the flags given;
3. on a wrong variable or value prints `<prog>: bad settings: <why>` on stderr and returns None:
   the program then exits with EXIT_BAD_SETTINGS (2, argparse's status for a bad command line);
4. otherwise configures logging from the settings and returns them.

Which variables the programs read: linewatch/program_variables.py, a list generated from every
program's settings class by `python -m programs.settings_doc --write` (tests/test_settings.py fails
when it drifts). The list, not the classes, because every alternative makes the base package
depend on the programs:
- importing the classes here is an arrow from linewatch/ up to every program, and a cycle (each
  program's start-up imports this module);
- entry points (importlib.metadata) hide the same arrow at run time and read the *installed*
  metadata: stale until the next `pip install -e` whenever a settings class moves (the alert
  consumer is moving to bridge/), and absent when running from a source tree;
- a registry the programs import from the program layer (programs/) is an arrow up from each
  program to the layer above it.
The list also keeps each program's start-up from importing every other program's modules.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from linewatch.errors import LinewatchError
from linewatch.logs import configure_logging
from linewatch.program_variables import PROGRAM_VARIABLES
from linewatch.settings import BaseProgramSettings, check_variables, known_variables

EXIT_BAD_SETTINGS = 2

S = TypeVar("S", bound=BaseProgramSettings)


def check_program_environment(
    *classes: type[BaseProgramSettings], environ: Mapping[str, str] | None = None
) -> None:
    """ConfigError for an LW_* variable that no linewatch program reads.

    The variables of `classes` (the program's own) are accepted even while the generated list
    lags behind a new setting, so a program never refuses its own settings.
    """
    check_variables(PROGRAM_VARIABLES | known_variables(*classes), environ)


def program_settings(
    prog: str,
    cls: type[S],
    overrides: Mapping[str, Any] | None = None,
    *,
    check: Callable[[S], None] | None = None,
    log_level: str | None = None,
) -> S | None:
    """`cls` from the environment and `overrides` (command-line values; None means not given),
    with logging configured; None, after `<prog>: bad settings: <why>` on stderr, when they are wrong.

    `check` runs further checks of the built settings (ConfigError when they fail); `log_level`
    replaces the settings' own level (the demo keeps the programs it runs quiet).
    """
    try:
        check_program_environment(cls)
        settings = cls(**{k: v for k, v in (overrides or {}).items() if v is not None})
        if check is not None:
            check(settings)
    except (LinewatchError, ValueError) as exc:  # ConfigError, or pydantic's ValidationError (a ValueError)
        print(f"{prog}: bad settings: {exc}", file=sys.stderr)
        return None
    configure_logging(log_level or settings.log_level, settings.log_json)
    return settings
