"""HTTP(S) downloads that resume, retry, verify and only then appear: one file, many files, and their manifest.

A download grows in `<target>.part` beside its target. An interrupted transfer (dropped connection, killed
process) is continued with a `Range` request on the next attempt or the next run; a server that ignores the range
(status 200) makes it start over. Connection errors and 5xx answers are retried up to `retries` times, waiting
`backoff_s · 2^attempt` in between; 4xx answers (the file is not there) fail at once. When the transfer is complete
the `.part` file is hashed: a sha256 that differs from the expected one deletes it and fails; otherwise it is renamed
onto the target, so a file at the target name is always complete and verified (DESIGN.md, reliability rules).

Reads: URLs. Writes: the targets, and a manifest JSON ({file name: url, size, sha256, verified, fetched_at}).
Standard library only (urllib): no new dependency for a handful of GETs.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path

from tqdm import tqdm

from stacmr.atomic import write_text
from stacmr.checksum import sha256_file
from stacmr.errors import StacmrError

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
                tqdm(
                    total=total, initial=offset, unit="B", unit_scale=True, desc=part.stem, disable=not progress
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


def download(
    url: str, target: str | os.PathLike, sha256: str | None, policy: DownloadPolicy, progress: bool = True
) -> FetchRecord:
    """Fetch `url` to `target` (resuming a `.part` left by an earlier attempt) and verify it; see the module doc.

    A target that already exists is complete by construction; it is only re-hashed, and kept when it matches.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists():
        digest = sha256_file(target)
        if sha256 is None or digest == sha256:
            return fetch_record(url, target, digest, sha256 is not None)
        target.unlink()  # a stale file from another release: fetch it again
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
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise StacmrError(f"{url}: sha256 mismatch (expected {sha256}, got {digest}); the download was deleted")
    os.replace(part, target)
    return fetch_record(url, target, digest, sha256 is not None)


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
    with ThreadPoolExecutor(max_workers=workers) as pool, tqdm(total=len(items), unit="file", desc="images") as bar:
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
