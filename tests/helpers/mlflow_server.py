"""An MLflow server (`mlflow ui` or `mlflow server`) on 127.0.0.1 for the tests, and its REST API read with urllib."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from tests.helpers.loopback import free_port


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


def post(url: str, body: dict) -> dict:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


@contextlib.contextmanager
def serving(command: list[str], cwd: Path, log_path: Path) -> Iterator[str]:
    """`python -m mlflow <command…> --host 127.0.0.1 --port <free> --workers 1` run in `cwd` until its /health answers:
    yields its base URL. No MLflow variable of the caller reaches it, and no job runner (huey) is started. Stopped at
    the end by its own process id, which leads its process group (its workers with it)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    argv = [sys.executable, "-m", "mlflow", *command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    with open(log_path, "wb") as server_log:
        server = subprocess.Popen(
            argv, cwd=cwd, env=env, stdout=server_log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, f"mlflow {command[0]} exited:\n{log_path.read_text()}"
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"mlflow {command[0]} did not come up in 60 s:\n{log_path.read_text()}"
            time.sleep(0.5)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
