"""Output files: checked before any work, written atomically, never left half-written.

Every file snn-onnx writes for a user (the SNN, ``run --output``, ``eval --json-out``, NIR
files, reports' tables) goes through :func:`check_output_path` before the work starts and
through :func:`atomic_write` at the end:

* the path is refused up front when it names a directory, exists without ``force``, lies in a
  folder that does not exist or cannot take a new file (a read-only mount, no permission, an
  immutable folder: probed by creating a file there, because ``os.access`` says yes to root on
  a read-only permission bit and knows nothing of immutable folders);
* the data goes to a temporary file beside the target (``.<name>.<random>.tmp``) that is renamed
  over it only once complete, so the user's file is never replaced by a partial one; the
  temporary file is removed on every exit Python sees (an error, ``KeyboardInterrupt``, a
  ``SystemExit`` raised by a signal handler); SIGKILL cannot be caught and leaves it behind;
* the new file gets the permissions a plain ``open(path, "w")`` would give: ``0o666`` less the
  umask for a new file, the old file's permission bits when it replaces one
  (``tempfile.mkstemp`` alone would make every output ``0o600``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Callable, Iterator

from .errors import OutputExistsError, OutputWriteError

TEMP_SUFFIX = ".tmp"


def temp_prefix(out: Path) -> str:
    """Temporary files for ``out`` are named ``.<out.name>.<random>.tmp`` in its folder."""
    return f".{out.name}."


def check_output_path(output: str | os.PathLike, force: bool = False, *, suffix: str | None = None,
                      option: str = "output") -> Path:
    """Refuse, with one line naming the path, an output that cannot be written: a directory,
    an existing file without ``force``, a missing or unwritable folder, a wrong ``suffix``
    (e.g. ``".npz"``; compared case-insensitively). ``option`` names the flag in messages."""
    out = Path(output)
    if str(output) == "" or out.name in ("", ".", ".."):
        raise OutputExistsError(f"{option} {str(output)!r} is not a file name")
    if suffix is not None and out.suffix.lower() != suffix.lower():
        raise OutputExistsError(f"{option} must name a {suffix} file, got '{out}' (e.g. '{out.name}{suffix}')")
    if out.is_dir():
        raise OutputExistsError(f"{option} '{out}' is a directory; give a file name inside it")
    if out.exists() or out.is_symlink():
        if not force:
            raise OutputExistsError(f"{option} file exists: {out} (pass --force / force=True to overwrite)")
        if not out.is_file():
            raise OutputExistsError(f"{option} '{out}' exists and is not a regular file; it is not replaced")
    parent = out.parent
    if not parent.exists():
        raise OutputExistsError(f"output directory does not exist: {parent}")
    if not parent.is_dir():
        raise OutputExistsError(f"output directory '{parent}' is not a directory")
    probe_writable(parent)
    return out


@contextlib.contextmanager
def _temp_file(folder: Path, prefix: str) -> Iterator[str]:
    """A new empty file ``<folder>/<prefix><random>.tmp`` (mode 0600), removed when the block
    ends unless renamed away. The name is chosen before the file is made, so an exception at
    any point (a signal handler raising inside ``os.open``'s return included) still finds it:
    ``tempfile.mkstemp`` would create the file before the caller learns its name."""
    path: str | None = str(folder / f"{prefix}{secrets.token_hex(8)}{TEMP_SUFFIX}")
    try:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # 2^-64: someone else's file, leave it alone
            taken, path = path, None
            raise OSError(errno.EEXIST, "temporary file name taken", taken) from None
        os.close(fd)
        yield path
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                os.unlink(path)


def probe_writable(folder: Path) -> None:
    """Create and remove a temporary file in ``folder``; refuse it when that fails."""
    try:
        with _temp_file(Path(folder), ".snn-onnx-probe."):
            pass
    except OSError as err:
        raise OutputExistsError(f"output directory '{folder}' is not writable ({_reason(err)})") from None


def umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)  # elsewhere: the classic read, set back at once
    os.umask(old)
    return old


def new_file_mode(out: Path) -> int:
    """Permission bits for the file written at ``out``: those of the file it replaces, else
    ``0o666`` less the umask."""
    try:
        return stat.S_IMODE(os.stat(out).st_mode)
    except OSError:
        return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_path(output: str | os.PathLike) -> Iterator[str]:
    """A temporary path beside ``output`` to write to; renamed over ``output`` when the block
    ends without an exception, removed on any exception (BaseException included). OS errors
    become :class:`OutputWriteError` naming the output."""
    out = Path(output)
    try:
        with _temp_file(out.parent, temp_prefix(out)) as tmp:
            yield tmp
            os.chmod(tmp, new_file_mode(out))
            os.replace(tmp, out)
    except OSError as err:
        raise OutputWriteError(f"cannot write {out}: {_reason(err)}") from None


def atomic_write(output: str | os.PathLike, write: Callable[[str], None]) -> Path:
    """``write(tmp_path)`` writes the content; it lands at ``output`` complete or not at all."""
    with atomic_path(output) as tmp:
        write(tmp)
    return Path(output)


def write_text(output: str | os.PathLike, text: str) -> Path:
    """``Path.write_text`` (UTF-8), atomically."""
    return atomic_write(output, lambda p: Path(p).write_text(text, encoding="utf-8"))


def write_bytes(output: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(output, lambda p: Path(p).write_bytes(data))


def write_npz(output: str | os.PathLike, arrays: dict) -> Path:
    """``np.savez`` to exactly ``output`` (NumPy appends ``.npz`` to a name without it; a file
    object does not)."""
    import numpy as np

    def write(p: str) -> None:
        with open(p, "wb") as f:
            np.savez(f, **arrays)

    return atomic_write(output, write)


def _reason(err: OSError) -> str:
    name = errno.errorcode.get(err.errno or 0, "")
    text = err.strerror or str(err)
    return f"{text} [{name}]" if name else text
