"""The downloader against a loopback HTTP server started here (127.0.0.1 only): resume, retries, checksum, kill."""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from stacmr.data.download import DownloadPolicy, download, download_many, write_manifest
from stacmr.errors import StacmrError

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
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


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
