"""How a ``castiel`` command ends when something goes wrong: one line on stderr and an exit code, never a traceback.

=========  ==============================================================================================
exit code  meaning
=========  ==============================================================================================
2          usage: a flag or argument is wrong (click's own checks, ``typer.BadParameter``) or the
           configuration is (``ConfigError``): the same command fails again until the input is fixed
1          runtime: the thing named does not exist (``NotFound``), its state refuses the command
           (``PreconditionFailed``), a backend failed, or Castiel has a bug
141        whoever read stdout stopped reading (``castiel tasks list | head -3``): the command ends quietly,
           with the status a program killed by SIGPIPE has (128 + 13), as ``seq 1000 | head -1``'s ``seq`` does
=========  ==============================================================================================

A bug prints ``error: unexpected …`` and the name of a file (in the system's temporary directory, readable by the
user only) holding the traceback: the operator sees one line, and the report a maintainer needs is not lost.
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Iterator
from contextlib import contextmanager

import typer

from castiel.errors import CastielError, ConfigError

USAGE = 2
RUNTIME = 1
READER_GONE = 141


@contextmanager
def one_line_errors() -> Iterator[None]:
    """Turn whatever the block raises into one ``error: …`` line on stderr and ``typer.Exit`` with its code."""
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except typer.TyperException as exc:  # click's usage and file errors (typer vendors click)
        # Giving a group no arguments asks for its help, which click has already printed; the exit code stays.
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        raise _fail(_usage_message(exc), exc.exit_code) from None
    except CastielError as exc:
        raise _fail(str(exc), USAGE if isinstance(exc, ConfigError) else RUNTIME) from None
    except BrokenPipeError:
        _silence_stdout()
        raise typer.Exit(READER_GONE) from None
    except Exception as exc:
        raise _fail(_unexpected(exc), RUNTIME) from None


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's final flush of what is still buffered does not fail
    on the closed pipe again (the recipe in Python's ``signal`` documentation, "Note on SIGPIPE")."""
    try:
        descriptor = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test runner's capture): nothing will flush to a pipe
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, descriptor)
    os.close(devnull)


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    return typer.Exit(code)


def _usage_message(exc: typer.TyperException) -> str:
    context = getattr(exc, "ctx", None)
    hint = f" (see '{context.command_path} --help')" if context is not None else ""
    return f"{exc.format_message()}{hint}"


def _unexpected(exc: Exception) -> str:
    summary = f"unexpected {type(exc).__name__}: {exc}"
    try:
        descriptor, path = tempfile.mkstemp(prefix="castiel-error-", suffix=".log")
        with os.fdopen(descriptor, "w", encoding="utf-8") as log:
            traceback.print_exception(exc, file=log)
    except OSError:
        return f"{summary} (a bug in castiel; its traceback could not be saved)"
    return f"{summary} (a bug in castiel; its traceback is in {path})"
