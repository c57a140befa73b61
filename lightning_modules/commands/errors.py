"""One line per error: the project's own checks print ``error: <message>``, not Hydra's traceback.

Every check in this project (bad key, bad value, bad file) is a ``raise`` statement in the project's
code with a message that names the key or the file; the traceback under it only hides that line. Such
an error ends the command with ``error: <message>`` on stderr and exit code 1. Anything else (a bug,
an error deep inside a library) keeps its full traceback, and so does every error when
``HYDRA_FULL_ERROR=1`` is set. In a multirun each failed job is left to Hydra, which records it and
goes on with the other jobs.
"""

from __future__ import annotations

import functools
import linecache
import os
import sys
from collections.abc import Callable
from typing import Any

from hydra.core.hydra_config import HydraConfig
from hydra.errors import InstantiationException
from hydra.types import RunMode

PROJECT_PACKAGES = ("datamodules", "lightning_modules", "scripts", "__main__")


def is_project_check(err: BaseException) -> bool:
    """Whether ``err`` was raised by a ``raise`` statement in the project's own code (not by a library,
    and not by a failing expression such as ``int("x")`` in the project's code)."""
    tb = err.__traceback__
    if tb is None or not isinstance(err, Exception):
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    if module.split(".")[0] not in PROJECT_PACKAGES:
        return False
    line = linecache.getline(tb.tb_frame.f_code.co_filename, tb.tb_lineno).strip()
    return line.startswith("raise ")


def check_command_line(argv: list[str] | None = None) -> None:
    """Before Hydra reads the command line: a ``key=value`` its grammar cannot read (a path with spaces
    or parentheses, ``input=/data/scan 1 (copy).png``) ends in one line that shows the quoting that
    works, ``"input='/data/scan 1 (copy).png'"``, instead of Hydra's lexer error."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    parser = None
    for arg in sys.argv[1:] if argv is None else argv:
        if arg.startswith("-") or "=" not in arg:
            continue  # flags (-m, --cfg job) and their values
        parser = parser or OverridesParser.create()
        try:
            parser.parse_overrides([arg])
        except OverrideParseException:
            key, _, value = arg.partition("=")
            if "'" not in value:
                hint = f"\"{key}='{value}'\""
            elif '"' not in value:
                hint = f"'{key}=\"{value}\"'"
            else:
                hint = "a value quoted for Hydra inside the shell's quotes (see docs/reliability.md)"
            print(
                f"error: {arg}: Hydra cannot read this value unquoted (spaces, ( ), [ ], {{ }}, commas, quotes "
                f"and = need quotes); quote it for Hydra inside the shell's quotes: {hint}",
                file=sys.stderr,
                flush=True,
            )
            raise SystemExit(1) from None


def _in_multirun() -> bool:
    return HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN


def one_line_errors(task: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a Hydra task function (under ``@hydra.main``) so the project's errors print one line."""

    @functools.wraps(task)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return task(*args, **kwargs)
        except Exception as err:
            # hydra.utils.instantiate wraps what a constructor raised; the constructor's check is the news
            cause = err.__cause__ if isinstance(err, InstantiationException) and err.__cause__ else err
            if os.environ.get("HYDRA_FULL_ERROR") == "1" or _in_multirun() or not is_project_check(cause):
                raise
            print(f"error: {cause}", file=sys.stderr, flush=True)
            raise SystemExit(1) from None

    return wrapper
