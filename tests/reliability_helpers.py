"""Helpers of the CLI reliability tests: folders nobody can write to (even root), snapshots of
a folder's files, the one-line error check, the CLI as a real process."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[1]


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for ``python -m snn_onnx_cli`` that imports the same packages as this
    test process: the installed ones in CI (with the built op library), the checkout's folders
    in a development run."""
    import snn_onnx
    import snn_onnx_cli
    import snn_onnx_models

    env = dict(os.environ)
    paths = list(dict.fromkeys(str(Path(m.__file__).resolve().parents[1])
                               for m in (snn_onnx, snn_onnx_models, snn_onnx_cli)))
    env["PYTHONPATH"] = os.pathsep.join(paths + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    # -P: the working directory does not go on sys.path, so a run from the checkout's root
    # still imports the packages cli_env names (the installed ones in CI).
    return [sys.executable, "-P", "-m", "snn_onnx_cli", *args]


@contextlib.contextmanager
def unwritable_dir(path: Path) -> Iterator[str | None]:
    """Make ``path`` (an existing folder) refuse new files for this process: permissions for a
    normal user; for root, whom permissions do not stop, the immutable attribute (chattr +i).
    Yields None when neither works here (the caller skips)."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield "permissions 0555"
        finally:
            path.chmod(0o755)
        return
    chattr = shutil.which("chattr")
    if chattr is None or subprocess.run([chattr, "+i", str(path)], capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield "immutable (chattr +i)"
    finally:
        subprocess.run([chattr, "-i", str(path)], capture_output=True)


def can_mount_read_only() -> bool:
    """Whether ``unshare -rm`` can mount a read-only tmpfs here (a user namespace)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return False
    probe = subprocess.run([unshare, "-rm", "sh", "-c", "mount -t tmpfs -o ro none /mnt 2>/dev/null || "
                            "mount -t tmpfs -o ro none /tmp"], capture_output=True)
    return probe.returncode == 0


def snapshot(folder: Path) -> dict[str, tuple]:
    """Every entry under ``folder`` (hidden ones too): kind, mode, size and content hash."""
    out: dict[str, tuple] = {}
    for p in sorted(folder.rglob("*")):
        st = p.lstat()
        rel = str(p.relative_to(folder))
        if p.is_file() and not p.is_symlink():
            out[rel] = ("file", st.st_mode, st.st_size, st.st_mtime_ns, hashlib.sha1(p.read_bytes()).hexdigest())
        else:
            out[rel] = ("dir" if p.is_dir() else "other", st.st_mode)
    return out


def assert_one_line_error(code: int, stderr: str, output: str, expected_code: int, *fragments: str) -> str:
    """Exit ``expected_code``, exactly one non-empty stderr line ``error: ...`` that holds every
    fragment, no traceback, no "internal error"."""
    assert code == expected_code, (code, stderr, output)
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert "Traceback" not in output + stderr and "internal error" not in stderr and "Usage:" not in output + stderr
    for f in fragments:
        assert f in lines[0], (f, lines[0])
    return lines[0]
