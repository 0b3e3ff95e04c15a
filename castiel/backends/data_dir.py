"""The data directory (``CASTIEL_DATA_DIR``) the embedded backends live in: found, created, or refused in one line.

What lives there: ``castiel.db`` (store and queue), ``secrets.json``, the shared embedded Redis's record and locks
(``redis.json``, ``redis.lock``, ``redis.start.lock``, ``redis.log``) and ``serve.lock`` while a ``castiel serve``
runs. Only ``castiel serve`` and the commands that write the first thing (``connections add``) create it; every
other command, reading what is there, says there is none instead of leaving an empty one behind.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from castiel.errors import NotFound, PermanentError

DIRECTORY_MODE = 0o700


def shown(path: Path) -> str:
    """``path`` as messages print it: absolute, so it says which directory even when the setting is relative."""
    return str(path.absolute())


def require_data_dir(path: Path) -> Path:
    """``path`` if it is an existing directory; ``NotFound`` (nothing is created) or ``PermanentError`` if not."""
    if not path.exists():
        raise NotFound(
            f"no data directory at {shown(path)}: run `castiel serve` or `castiel connections add` first,"
            " or set CASTIEL_DATA_DIR to the directory in use"
        )
    if not path.is_dir():
        raise _not_a_directory(path)
    return path


def ensure_data_dir(path: Path) -> Path:
    """``path``, created (mode 0700) when missing; ``PermanentError`` naming the problem when it cannot be."""
    with unusable_data_dir(path):
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    if not path.is_dir():
        raise _not_a_directory(path)
    return path


@contextmanager
def unusable_data_dir(path: Path) -> Iterator[None]:
    """Turn an ``OSError`` from working in the data directory into a ``PermanentError`` an operator can act on."""
    try:
        yield
    except FileExistsError as exc:
        raise _not_a_directory(path) from exc
    except NotADirectoryError as exc:
        raise PermanentError(f"cannot use data directory {shown(path)}: a part of that path is a file") from exc
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise not_writable(path) from exc
        raise PermanentError(f"cannot use data directory {shown(path)}: {exc.strerror or exc}") from exc


def not_writable(path: Path) -> PermanentError:
    """The error for a data directory this process may not write to."""
    return PermanentError(
        f"data directory {shown(path)} is not writable: give this user write access to it,"
        " or set CASTIEL_DATA_DIR to a directory it can write"
    )


def is_writable(path: Path) -> bool:
    """True when this process may create files in ``path``."""
    return os.access(path, os.W_OK | os.X_OK)


def _not_a_directory(path: Path) -> PermanentError:
    return PermanentError(
        f"data directory {shown(path)} is a file, not a directory: set CASTIEL_DATA_DIR to a directory"
    )
