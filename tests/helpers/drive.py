"""A loopback Google Drive for gdown: the confirmation page of a large file, then the file (127.0.0.1 only)."""

from __future__ import annotations

import contextlib
import hashlib
import html
import http.server
import importlib
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.helpers.loopback import serving

DRIVE_ID = "1C2ZOM2VB8PwjD-tdqdt00F3DW7m9YznQ"
DRIVE_URL = f"gdrive://{DRIVE_ID}"
DRIVE_BODY = bytes(range(256)) * 6000  # 1.5 MB: gdown writes in 512 kB chunks
DRIVE_SHA = hashlib.sha256(DRIVE_BODY).hexdigest()
_DRIVE_HOSTS = ("drive.google.com", "drive.usercontent.google.com")


class _DriveHandler(http.server.BaseHTTPRequestHandler):
    """Google Drive as gdown meets it for a large file: /uc?id= redirects to drive.usercontent's /download, which
    answers with the "virus scan warning" form (hidden id, export, confirm, uuid); the form's GET sends the file
    (Content-Disposition, ETag, `Range` honoured). `server.quota`: the download page says the quota is exceeded;
    `server.drop`: the next file response stops halfway."""

    def log_message(self, *args) -> None:
        pass

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for key, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        drive = self.server
        path, _, query = self.path.partition("?")
        args = dict(urllib.parse.parse_qsl(query))
        drive.requests.append((path, args, self.headers.get("Range")))
        if args.get("id") != DRIVE_ID:
            self._send(404, b"<html><body>Not Found</body></html>", {"Content-Type": "text/html; charset=utf-8"})
        elif path == "/uc":
            location = f"https://drive.usercontent.google.com/download?id={DRIVE_ID}&export=download"
            self._send(303, b"", {"Location": location, "Content-Type": "text/html; charset=utf-8"})
        elif drive.quota:
            page = (
                '<html><body><p class="uc-error-caption">Sorry, you can&#39;t view or download this file at this'
                ' time.</p><p class="uc-error-subcaption">Too many users have viewed or downloaded this file'
                " recently.</p></body></html>"
            )
            self._send(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
        elif args.get("confirm") != "t" or args.get("uuid") != drive.uuid:
            hidden = {"id": DRIVE_ID, "export": "download", "confirm": "t", "uuid": drive.uuid}
            inputs = "".join(f'<input type="hidden" name="{k}" value="{html.escape(v)}">' for k, v in hidden.items())
            page = (
                "<!DOCTYPE html><html><head><title>Google Drive - Virus scan warning</title></head><body>\n"
                '<div class="uc-main"><p class="uc-warning-caption">Google Drive can&#39;t scan this file for'
                ' viruses.</p><form id="download-form" action="https://drive.usercontent.google.com/download"'
                f' method="get"><input type="submit" id="uc-download-link" value="Download anyway"/>{inputs}</form>'
                "</div>\n</body></html>"
            )
            self._send(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
        else:
            self._file(drive.body)

    def _file(self, body: bytes) -> None:
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        start = 0
        rng = self.headers.get("Range")
        if rng and self.headers.get("If-Range", etag) == etag:
            start = int(rng.removeprefix("bytes=").rstrip("-"))
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Disposition", 'attachment; filename="ctc_features.zip"')
        self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        if self.server.drop:
            self.server.drop = False
            self.wfile.write(body[start : start + (len(body) - start) // 2])
            self.wfile.flush()
            self.connection.shutdown(2)
            return
        self.wfile.write(body[start:])


@contextlib.contextmanager
def serve_drive(monkeypatch: pytest.MonkeyPatch, cookies: Path) -> Iterator[http.server.ThreadingHTTPServer]:
    """A loopback Drive (`_DriveHandler`) serving DRIVE_BODY as DRIVE_ID. gdown speaks Drive's protocol only to Drive's
    hosts, so their requests are rerouted to it at the `requests` transport; any other host fails the test.
    gdown's cookies file goes to `cookies` (not the user's ~/.cache/gdown)."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _DriveHandler)
    httpd.requests, httpd.body, httpd.uuid, httpd.quota, httpd.drop = [], DRIVE_BODY, str(uuid.uuid4()), False, False
    send = requests.Session.send

    def rerouted(session, request, **kwargs):
        parts = urllib.parse.urlsplit(request.url)
        if parts.hostname in _DRIVE_HOSTS:
            request.url = f"{local}{parts.path}?{parts.query}"
        elif parts.hostname != "127.0.0.1":
            raise AssertionError(f"the test reached for {request.url}")
        return send(session, request, **kwargs)

    with serving(httpd) as local:
        monkeypatch.setattr(requests.Session, "send", rerouted)
        monkeypatch.setattr(importlib.import_module("gdown.download"), "DEFAULT_COOKIES_FILE", str(cookies))
        yield httpd
