"""Atomic writes: every output is built under a temporary name beside its target and renamed into place on success.

An interrupted or failing write leaves no file at the target name, so a later stage never trusts a half file.
Works for single files and for whole output directories.

A process killed mid-write (SIGKILL, power loss) runs no cleanup and leaves its temporary behind. Temporaries are
named `.{target name}.{pid}.{random}.tmp` (`.old` for the previous output being swapped out), so each write first
deletes those of its own target whose process is gone (issue #14: a killed `features` left gigabytes forever).
A live writer's temporaries are never touched; the pid test assumes the writers share one machine. This costs one
listing of the target's directory per write.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine); when that cannot be told, assume it does."""
    if pid <= 0 or os.name != "posix":
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists, owned by another user
        return True
    return True


def _prefix(target: Path) -> str:
    """The start of this process's temporary names for `target`."""
    return f".{target.name}.{os.getpid()}."


def remove_stale_temporaries(target: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of `target` (files or directories) left by writers that died; return them."""
    target = Path(target)
    own = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[a-z0-9_]+\.(?:tmp|old)")
    stale = []
    with os.scandir(target.parent) as entries:
        for entry in entries:
            match = own.fullmatch(entry.name)
            if match and not _alive(int(match[1])):
                stale.append(Path(entry.path))
    for path in stale:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return stale


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `target`; on success rename it onto `target`, on failure delete it."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    tmp.chmod(0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory beside `target`; on success it replaces `target` whole."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    tmp = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".tmp", dir=target.parent))
    tmp.chmod(0o777 & ~_umask())
    try:
        yield tmp
        if target.exists():
            old = Path(tempfile.mkdtemp(prefix=_prefix(target), suffix=".old", dir=target.parent))
            os.replace(target, old / target.name)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write `text` (UTF-8) to `target` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
