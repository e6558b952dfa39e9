"""Safe extraction of the released archives (tar, optionally compressed, and zip) into a directory.

Every member is checked before anything is written: absolute paths, `..` components, links whose target is absolute
or leaves the archive root, hard links to anything but an earlier member, device files and FIFOs are refused, and so
is an archive whose declared unpacked size exceeds `max_bytes` (a zip bomb declares what it will write: zipfile stops
reading a member at its declared size). Zip symlinks are refused outright (zipfile would write them as text files).
Extraction then writes each member itself (no `extractall`), checking that the real path of every write stays
inside the extraction root, so a chain of in-archive links cannot lead outside either. It all happens in a temporary
directory beside the target, renamed onto it at the end: a refused or interrupted extraction leaves nothing.

Reads: one archive. Writes: the target directory.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

from stacmr.atomic import atomic_dir
from stacmr.errors import StacmrError


def _safe_name(archive: Path, name: str) -> str:
    """The member name as a clean relative POSIX path, or an error naming the archive and the member."""
    if name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        raise StacmrError(f"{archive}: member {name!r} has an absolute path; refusing to extract")
    parts = name.replace("\\", "/").split("/")
    if ".." in parts:
        raise StacmrError(f"{archive}: member {name!r} climbs out with '..'; refusing to extract")
    clean = posixpath.normpath("/".join(p for p in parts if p not in ("", ".")))
    return "" if clean == "." else clean


def _inside(root: Path, path: Path) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, os.path.realpath(path)]) == real_root


def _check_link(archive: Path, name: str, link: str) -> None:
    """A symlink at `name` pointing to `link` must resolve (lexically) inside the archive root."""
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), link))
    if link.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise StacmrError(f"{archive}: link {name!r} → {link!r} points outside the archive; refusing to extract")


def _tar_plan(archive: Path, tar: tarfile.TarFile, max_bytes: int) -> list[tuple[tarfile.TarInfo, str]]:
    """Every member with its clean name, after checking them all (nothing is written before this returns)."""
    plan, total, seen = [], 0, set()
    for member in tar.getmembers():
        name = _safe_name(archive, member.name)
        if not (member.isreg() or member.isdir() or member.issym() or member.islnk()):
            raise StacmrError(f"{archive}: member {member.name!r} is a device, FIFO or special file; refusing")
        if member.issym():
            _check_link(archive, name, member.linkname)
        if member.islnk():
            target = _safe_name(archive, member.linkname)
            if target not in seen:
                raise StacmrError(
                    f"{archive}: hard link {member.name!r} → {member.linkname!r} does not point to an earlier file"
                    " of the archive; refusing to extract"
                )
        total += member.size if member.isreg() else 0
        if total > max_bytes:
            raise StacmrError(f"{archive}: unpacks to more than {max_bytes} bytes (release.max_unpacked_bytes)")
        seen.add(name)
        plan.append((member, name))
    return plan


def _extract_tar(archive: Path, root: Path, max_bytes: int) -> None:
    with tarfile.open(archive) as tar:
        for member, name in _tar_plan(archive, tar, max_bytes):
            dest = root / name
            if not name:
                continue
            if not _inside(root, dest.parent):
                raise StacmrError(f"{archive}: member {member.name!r} would be written through a link outside")
            if member.isdir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            if member.issym():
                os.symlink(member.linkname, dest)
                if not _inside(root, dest):
                    raise StacmrError(f"{archive}: link {member.name!r} resolves outside the archive; refusing")
            elif member.islnk():
                source = root / _safe_name(archive, member.linkname)
                if not _inside(root, source):
                    raise StacmrError(f"{archive}: hard link {member.name!r} resolves outside the archive; refusing")
                os.link(os.path.realpath(source), dest)
            else:
                with tar.extractfile(member) as src, open(dest, "xb") as out:
                    shutil.copyfileobj(src, out)
                dest.chmod(0o644 | (member.mode & 0o111))


def _extract_zip(archive: Path, root: Path, max_bytes: int) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        total = 0
        for info in infos:
            _safe_name(archive, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise StacmrError(f"{archive}: member {info.filename!r} is a symlink; refusing to extract")
            total += info.file_size
            if total > max_bytes:
                raise StacmrError(f"{archive}: unpacks to more than {max_bytes} bytes (release.max_unpacked_bytes)")
        for info in infos:
            name = _safe_name(archive, info.filename)
            if not name:
                continue
            dest = root / name
            if info.is_dir():
                dest.mkdir(parents=True, exist_ok=True)
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            with zf.open(info) as src, open(dest, "xb") as out:
                shutil.copyfileobj(src, out)


def extract_archive(archive: str | os.PathLike, target: str | os.PathLike, max_bytes: int) -> Path:
    """Extract `archive` (tar, tar.gz/bz2/xz, or zip) into the directory `target` (replaced whole); see the module
    doc for what is refused. Returns `target`."""
    archive, target = Path(archive), Path(target)
    if not archive.is_file():
        raise StacmrError(f"{archive}: archive is missing")
    try:
        is_zip = zipfile.is_zipfile(archive)
        is_tar = not is_zip and tarfile.is_tarfile(archive)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise StacmrError(f"{archive}: corrupt archive: {exc}") from None
    if not (is_zip or is_tar):
        raise StacmrError(f"{archive}: not a tar or zip archive (truncated download?)")
    try:
        with atomic_dir(target) as tmp:
            (_extract_zip if is_zip else _extract_tar)(archive, tmp, max_bytes)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as exc:
        raise StacmrError(f"{archive}: corrupt archive: {exc}") from None
    return target
