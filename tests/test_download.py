"""The downloader against loopback HTTP servers started here (127.0.0.1 only): resume, retries, checksum, kill; and
Google Drive through gdown against a server that plays Drive (the confirmation page of large files, then the file)."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from stacmr.data.download import (
    ChecksumError,
    DownloadPolicy,
    download,
    download_checked,
    download_many,
    recorded_path,
    write_manifest,
)
from stacmr.errors import StacmrError
from tests.helpers.drive import DRIVE_BODY, DRIVE_SHA, DRIVE_URL, serve_drive
from tests.helpers.loopback import serving

BODY = bytes(range(256)) * 400  # 102,400 bytes
SHA = hashlib.sha256(BODY).hexdigest()
POLICY = DownloadPolicy(timeout_s=5.0, retries=2, backoff_s=0.01)


class _Handler(http.server.BaseHTTPRequestHandler):
    """Paths: /ok, /drop (half the body on the first request, then closes), /slow (trickles), /missing (404),
    /broken (500), /wrong (a body that is not BODY). Honours `Range: bytes=N-`."""

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Range")))
        if self.path == "/missing":
            self.send_error(404, "Not Found")
            return
        if self.path == "/broken":
            self.send_error(500, "Internal Server Error")
            return
        body = b"x" * len(BODY) if self.path == "/wrong" else BODY
        start = 0
        if rng := self.headers.get("Range"):
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.path == "/drop" and not self.server.dropped:
            self.server.dropped = True
            self.wfile.write(body[start : start + len(body) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        if self.path == "/slow":
            for a in range(start, len(body), 1024):
                self.wfile.write(body[a : a + 1024])
                self.wfile.flush()
                time.sleep(0.02)
            return
        self.wfile.write(body[start:])


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.requests, httpd.dropped = [], False
    with serving(httpd) as url:
        yield httpd, url


def test_clean_download_is_verified_and_recorded(server, tmp_path):
    httpd, base = server
    record = download(f"{base}/ok", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert (record.size, record.sha256, record.verified) == (len(BODY), SHA, True)
    assert not (tmp_path / "f.bin.part").exists()
    write_manifest(tmp_path / "manifest.json", [record])
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["f.bin"]["url"] == f"{base}/ok" and manifest["f.bin"]["sha256"] == SHA
    # present and verified: hashed again, not fetched again
    download(f"{base}/ok", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert len(httpd.requests) == 1


def test_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    httpd, base = server
    download(f"{base}/drop", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY
    assert httpd.requests[0] == ("/drop", None)
    assert httpd.requests[1] == ("/drop", f"bytes={len(BODY) // 2}-")


def test_wrong_checksum_is_rejected_and_nothing_is_left(server, tmp_path):
    _, base = server
    with pytest.raises(StacmrError, match=rf"{base}/wrong: sha256 mismatch \(expected {SHA}, got "):
        download(f"{base}/wrong", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_404_fails_at_once(server, tmp_path):
    httpd, base = server
    with pytest.raises(StacmrError, match=rf"^{base}/missing: HTTP 404 Not Found \(not retried"):
        download(f"{base}/missing", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert len(httpd.requests) == 1
    assert list(tmp_path.iterdir()) == []


def test_500_is_retried_a_bounded_number_of_times(server, tmp_path):
    httpd, base = server
    with pytest.raises(StacmrError, match=rf"^{base}/broken: download failed after 3 attempts: HTTP 500"):
        download(f"{base}/broken", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert len(httpd.requests) == POLICY.retries + 1
    assert not (tmp_path / "f.bin").exists()


def test_complete_part_is_not_fetched_again_and_an_oversized_one_is_replaced(server, tmp_path):
    httpd, base = server
    (tmp_path / "f.bin.part").write_bytes(BODY)  # killed after the last byte, before the rename
    download(f"{base}/ok", tmp_path / "f.bin", SHA, POLICY, progress=False)
    assert (tmp_path / "f.bin").read_bytes() == BODY and httpd.requests == [("/ok", f"bytes={len(BODY)}-")]
    (tmp_path / "g.bin.part").write_bytes(BODY + b"junk")  # the remote file shrank: the part cannot be resumed
    download(f"{base}/ok", tmp_path / "g.bin", None, POLICY, progress=False)
    assert (tmp_path / "g.bin").read_bytes() == BODY and httpd.requests[-1] == ("/ok", None)


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(StacmrError, match=r"download failed after 3 attempts: connection failed"):
        download("http://127.0.0.1:9/none", tmp_path / "f.bin", None, POLICY, progress=False)


def test_many_files_with_a_bounded_pool_skip_verified_ones(server, tmp_path):
    httpd, base = server
    items = [(f"{base}/ok?{i}", tmp_path / f"{i}.bin", SHA) for i in range(5)]
    (tmp_path / "0.bin").write_bytes(BODY)
    records = download_many(items, POLICY, workers=2)
    assert [r.file for r in records] == [f"{i}.bin" for i in range(5)]
    assert all((tmp_path / f"{i}.bin").read_bytes() == BODY for i in range(5))
    assert sorted(p for p, _ in httpd.requests) == [f"/ok?{i}" for i in range(1, 5)]


def test_many_files_report_their_failures_together(server, tmp_path):
    _, base = server
    items = [(f"{base}/ok", tmp_path / "a.bin", SHA), (f"{base}/missing", tmp_path / "b.bin", None)]
    with pytest.raises(StacmrError, match=r"^1 of 2 downloads failed .*missing: HTTP 404"):
        download_many(items, POLICY, workers=2)
    assert (tmp_path / "a.bin").read_bytes() == BODY


_CHILD = """
import sys
from stacmr.data.download import DownloadPolicy, download
download(sys.argv[1], sys.argv[2], sys.argv[3], DownloadPolicy(5.0, 0, 0.0), progress=False)
"""


def test_killed_download_is_finished_by_a_rerun(server, tmp_path):
    httpd, base = server
    target = tmp_path / "f.bin"
    part = tmp_path / "f.bin.part"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, f"{base}/slow", str(target), SHA], env=env)
    deadline = time.monotonic() + 30
    while not (part.exists() and part.stat().st_size >= 8 * 1024):
        assert child.poll() is None and time.monotonic() < deadline, "the child ended before it could be killed"
        time.sleep(0.01)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not target.exists() and 0 < part.stat().st_size < len(BODY)
    kept = part.stat().st_size
    download(f"{base}/slow", target, SHA, POLICY, progress=False)
    assert target.read_bytes() == BODY and not part.exists()
    assert httpd.requests[-1] == ("/slow", f"bytes={kept}-")


@pytest.fixture
def drive(monkeypatch, tmp_path):
    with serve_drive(monkeypatch, tmp_path / "cookies.txt") as httpd:
        yield httpd


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".drive" in p.name)


def test_drive_file_passes_the_confirmation_page_and_its_first_digest_is_recorded(drive, tmp_path):
    target = tmp_path / "downloads" / "ctc_features.zip"
    record, first = download_checked(DRIVE_URL, target, None, POLICY, progress=False)
    assert target.read_bytes() == DRIVE_BODY and first
    assert (record.url, record.sha256, record.verified) == (DRIVE_URL, DRIVE_SHA, False)
    assert recorded_path(target).read_text() == DRIVE_SHA + "\n"
    paths = [(path, args.get("uuid")) for path, args, _ in drive.requests]
    assert paths == [("/uc", None), ("/download", None), ("/download", drive.uuid)]  # the form was followed
    assert _leftovers(target.parent) == []

    # later runs check the recorded digest: present and matching → not fetched again, not "first"
    assert download_checked(DRIVE_URL, target, None, POLICY, progress=False)[1] is False
    assert len(drive.requests) == 3
    target.write_bytes(b"damaged")  # a damaged copy is fetched again and checked against the record
    assert download_checked(DRIVE_URL, target, None, POLICY, progress=False)[0].sha256 == DRIVE_SHA
    assert target.read_bytes() == DRIVE_BODY


def test_drive_file_that_changed_since_the_first_download_is_refused(drive, tmp_path):
    target = tmp_path / "ctc_features.zip"
    download_checked(DRIVE_URL, target, None, POLICY, progress=False)
    target.unlink()
    drive.body = DRIVE_BODY[::-1]
    with pytest.raises(ChecksumError, match=r"sha256 mismatch .* recorded at the first download in .*\.sha256"):
        download_checked(DRIVE_URL, target, None, POLICY, progress=False)
    assert not target.exists() and _leftovers(tmp_path) == []
    # a pinned sha256 wins over the record, and replaces it
    record, first = download_checked(DRIVE_URL, target, hashlib.sha256(drive.body).hexdigest(), POLICY, False)
    assert record.verified and not first and recorded_path(target).read_text().strip() == record.sha256


def test_drive_file_with_a_wrong_pinned_digest_is_deleted(drive, tmp_path):
    target = tmp_path / "ctc_features.zip"
    with pytest.raises(ChecksumError, match=rf"^{DRIVE_URL}: sha256 mismatch \(expected 0{{64}}, got {DRIVE_SHA}\)"):
        download_checked(DRIVE_URL, target, "0" * 64, POLICY, progress=False)
    assert not target.exists() and not recorded_path(target).exists() and _leftovers(tmp_path) == []


def test_interrupted_drive_download_resumes_with_a_range_request(drive, tmp_path):
    target = tmp_path / "ctc_features.zip"
    drive.drop = True
    once = DownloadPolicy(timeout_s=5.0, retries=0, backoff_s=0.0)
    failed = r"Google Drive download of ctc_features.zip failed: .*; rerun to resume from \d+ bytes in "
    with pytest.raises(StacmrError, match=failed):
        download_checked(DRIVE_URL, target, DRIVE_SHA, once, progress=False)
    (part,) = (p for p in tmp_path.iterdir() if p.name.endswith(".part"))
    kept = part.stat().st_size
    assert 0 < kept < len(DRIVE_BODY) and not target.exists()
    record, _ = download_checked(DRIVE_URL, target, DRIVE_SHA, once, progress=False)
    assert record.verified and target.read_bytes() == DRIVE_BODY and _leftovers(tmp_path) == []
    assert drive.requests[-1][2] == f"bytes={kept}-"


def test_drive_refusals_are_one_line_errors(drive, tmp_path):
    drive.quota = True
    with pytest.raises(StacmrError, match=r"^gdrive://\S+: Google Drive download of f.zip failed: .*Too many users"):
        download_checked(DRIVE_URL, tmp_path / "f.zip", None, POLICY, progress=False)
    with pytest.raises(StacmrError) as missing:
        download_checked("gdrive://" + "x" * 33, tmp_path / "g.zip", None, POLICY, progress=False)
    message = str(missing.value)
    assert "\n" not in message and "g.zip failed: " in message and message.endswith("; rerun to try again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cookies.txt"]
