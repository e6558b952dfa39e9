"""Downloads that resume, retry, verify and only then appear: one file, many files, and their manifest.

HTTP(S) (urllib): a download grows in `<target>.part` beside its target. An interrupted transfer (dropped connection,
killed process) is continued with a `Range` request on the next attempt or the next run; a server that ignores the
range (status 200) makes it start over. Connection errors and 5xx answers are retried up to `retries` times, waiting
`backoff_s · 2^attempt` in between; 4xx answers (the file is not there) fail at once.

Google Drive (`gdrive://<file id>`, through gdown): gdown passes Drive's confirmation page (the "virus scan warning"
form of large files) and grows the file in `<target>.drive<random>.part`; a rerun continues it with a `Range`
request. Connection errors are retried `retries` times with gdown's own backoff. The complete file is moved to
`<target>.drive`, hashed, and only then renamed onto the target.

Either way the complete file is hashed: a sha256 that differs from the expected one deletes it and fails; otherwise
it is renamed onto the target, so a file at the target name is always complete and verified.
Without a published sha256, `download_checked` trusts the first download: it records the digest in
`<target>.sha256` and expects it from then on.

Reads: URLs. Writes: the targets, `<target>.sha256`, and a manifest JSON ({file name: url, size, sha256, verified,
fetched_at}).
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path

import gdown

from stacmr.atomic import write_text
from stacmr.checksum import sha256_file
from stacmr.errors import StacmrError
from stacmr.params import DRIVE_SCHEME
from stacmr.progress import progress as progress_bar

_BLOCK = 1 << 16


@dataclass(frozen=True)
class DownloadPolicy:
    timeout_s: float  # socket timeout of one request (connect and each read)
    retries: int  # further attempts after the first, for connection errors and 5xx answers
    backoff_s: float  # wait before retry k (0-based): backoff_s · 2^k


@dataclass(frozen=True)
class FetchRecord:
    url: str
    file: str  # target file name
    size: int  # bytes
    sha256: str
    verified: bool  # True when an expected sha256 was given and matched; False: the digest is recorded only
    fetched_at: str  # UTC, ISO 8601


class ChecksumError(StacmrError):
    """A complete download whose sha256 is not the expected one (it has been deleted)."""


class _Retryable(Exception):
    """A failure that another attempt may cure (connection lost, timeout, 5xx, short body)."""


def _part_path(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _transfer(url: str, part: Path, timeout_s: float, progress: bool) -> None:
    """One attempt: continue `part` from its current size to the end of the resource."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            # the range starts at or past the end: complete when the part has exactly the resource's size
            if exc.headers.get("Content-Range", "") == f"bytes */{offset}":
                return
            part.unlink()
            raise _Retryable("the partial download does not fit the file on the server; starting over") from None
        if exc.code >= 500 or exc.code in (408, 429):
            raise _Retryable(f"HTTP {exc.code} {exc.reason}") from None
        raise StacmrError(
            f"{url}: HTTP {exc.code} {exc.reason} (not retried: the server says the file is not there)"
        ) from None
    except (urllib.error.URLError, OSError, HTTPException) as exc:
        raise _Retryable(f"connection failed: {getattr(exc, 'reason', exc)}") from None
    with response:
        if offset and response.status == 206:
            if not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                part.unlink()
                raise _Retryable("the server answered another range than asked; starting over")
            mode = "ab"
        else:
            mode, offset = "wb", 0  # a server that ignores Range sends the whole file: start over
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        received = offset
        try:
            with (
                open(part, mode) as f,
                progress_bar(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=part.stem, disable=not progress or None
                ) as bar,
            ):
                while block := response.read(_BLOCK):
                    f.write(block)
                    received += len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        except (OSError, HTTPException) as exc:
            raise _Retryable(f"transfer interrupted after {received} bytes: {exc}") from None
    if total is not None and received < total:
        raise _Retryable(f"connection closed after {received} of {total} bytes")


def _http(url: str, target: Path, policy: DownloadPolicy, progress: bool) -> tuple[Path, str]:
    """Transfer `url` into `<target>.part` with retries; returns that complete file and its sha256."""
    part = _part_path(target)
    for attempt in range(policy.retries + 1):
        try:
            _transfer(url, part, policy.timeout_s, progress)
            break
        except _Retryable as exc:
            if attempt == policy.retries:
                raise StacmrError(
                    f"{url}: download failed after {attempt + 1} attempts: {exc}; rerun to resume from"
                    f" {part.stat().st_size if part.exists() else 0} bytes in {part}"
                ) from None
            time.sleep(policy.backoff_s * 2**attempt)
    return part, sha256_file(part)


def _drive(url: str, target: Path, policy: DownloadPolicy, progress: bool) -> tuple[Path, str]:
    """Transfer the Drive file `gdrive://<id>` into `<target>.drive` with gdown; returns it and its sha256."""
    staged = target.with_name(target.name + ".drive")
    if staged.exists():  # complete (gdown moves a download there only at its end), not yet verified
        return staged, sha256_file(staged)
    digest = hashlib.sha256()  # gdown feeds it every byte, those of a resumed partial file first
    try:
        gdown.download(
            id=url.removeprefix(DRIVE_SCHEME),
            output=str(staged),
            quiet=not progress,
            resume=True,
            timeout=policy.timeout_s,
            retries=policy.retries,
            hasher=digest,
        )
    except (gdown.exceptions.DownloadError, OSError) as exc:  # requests' errors are OSErrors
        kept = [p for p in staged.parent.glob(glob.escape(staged.name) + "*.part") if p.stat().st_size]
        rerun = f"rerun to resume from {kept[0].stat().st_size} bytes in {kept[0]}" if kept else "rerun to try again"
        raise StacmrError(
            f"{url}: Google Drive download of {target.name} failed: {' '.join(str(exc).split()).rstrip('.')}; {rerun}"
        ) from None
    return staged, digest.hexdigest()


def download(
    url: str, target: str | os.PathLike, sha256: str | None, policy: DownloadPolicy, progress: bool = True
) -> FetchRecord:
    """Fetch `url` (http(s)://… or gdrive://<file id>) to `target`, resuming an earlier attempt's partial file, and
    verify it; see the module doc.

    A target that already exists is complete by construction; it is only re-hashed, and kept when it matches.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        digest = sha256_file(target)
        if sha256 is None or digest == sha256:
            return fetch_record(url, target, digest, sha256 is not None)
        target.unlink()  # a stale file from another release: fetch it again
    complete, digest = (_drive if url.startswith(DRIVE_SCHEME) else _http)(url, target, policy, progress)
    if sha256 is not None and digest != sha256:
        complete.unlink()
        raise ChecksumError(f"{url}: sha256 mismatch (expected {sha256}, got {digest}); the download was deleted")
    os.replace(complete, target)
    return fetch_record(url, target, digest, sha256 is not None)


def recorded_path(target: str | os.PathLike) -> Path:
    """Where `download_checked` records the sha256 of `target`'s first download: `<target>.sha256`."""
    target = Path(target)
    return target.with_name(target.name + ".sha256")


def download_checked(
    url: str, target: str | os.PathLike, sha256: str | None, policy: DownloadPolicy, progress: bool = True
) -> tuple[FetchRecord, bool]:
    """`download`, trusting the first download when no sha256 is published: its digest is recorded in
    `<target>.sha256` and expected by every later run (a local copy that no longer matches is fetched again; a file
    that changed at its source fails). A given `sha256` wins over the recorded one, and replaces it once verified.

    Returns the record (`verified` only against a given sha256) and whether a digest was recorded now, unpinned.
    """
    record_file = recorded_path(target)
    recorded = record_file.read_text(encoding="utf-8").strip() if record_file.is_file() else None
    try:
        record = download(url, target, sha256 or recorded, policy, progress)
    except ChecksumError as exc:
        if sha256 is not None or recorded is None:
            raise
        raise ChecksumError(
            f"{exc}. The expected digest was recorded at the first download in {record_file}: if the file changed"
            " at its source on purpose, delete that record to trust the new one"
        ) from None
    if record.sha256 != recorded:
        write_text(record_file, record.sha256 + "\n")
    return replace(record, verified=sha256 is not None), sha256 is None and recorded is None


def fetch_record(url: str, target: Path, digest: str, verified: bool) -> FetchRecord:
    """The manifest entry of a file at `target` whose sha256 is `digest` (fetched now, or found in place)."""
    return FetchRecord(
        url=url,
        file=target.name,
        size=target.stat().st_size,
        sha256=digest,
        verified=verified,
        fetched_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )


def download_many(items: list[tuple[str, Path, str | None]], policy: DownloadPolicy, workers: int) -> list[FetchRecord]:
    """Fetch many (url, target, sha256) items, at most `workers` at a time (files already present are re-hashed,
    not fetched); one progress bar over the files. Every item is tried; failures are reported together at the end."""
    records: list[FetchRecord] = []
    failures: list[str] = []
    bars = progress_bar(total=len(items), unit="file", desc="images")
    with ThreadPoolExecutor(max_workers=workers) as pool, bars as bar:
        futures = [pool.submit(download, url, target, sha, policy, False) for url, target, sha in items]
        for future in futures:
            try:
                records.append(future.result())
            except StacmrError as exc:
                failures.append(str(exc))
            bar.update(1)
    if failures:
        shown = "; ".join(failures[:3])
        raise StacmrError(f"{len(failures)} of {len(items)} downloads failed (rerun to resume): {shown}")
    return records


def write_manifest(path: str | os.PathLike, records: list[FetchRecord]) -> None:
    """Add `records` to the manifest JSON at `path` (keyed by file name; a newer record replaces an older one)."""
    path = Path(path)
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
    manifest.update({r.file: asdict(r) for r in records})
    write_text(path, json.dumps(manifest, indent=1, sort_keys=True) + "\n")
