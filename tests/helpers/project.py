"""A tiny copy of this project in a git repo of its own, for the tests (and the benchmark) that run DVC on it: the
working tree's tracked and unignored files (uncommitted edits count), its params shrunk to a tiny world, committed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import REPO
from tests.helpers.params import shrink

GIT = ["git", "-c", "user.name=stacmr test", "-c", "user.email=test@stacmr.invalid"]


def tiny_params(raw: dict) -> dict:
    """The working tree's params, shrunk: report.baseline and report.scene_text only (no Q-Pert stage), one epoch, one
    extra seed. Every section the params have is kept (loaded and shrunk, not written anew)."""
    tiny = shrink(raw)
    keep = [tiny["report"]["baseline"], tiny["report"]["scene_text"]]
    tiny["ablations"] = {name: tiny["ablations"][name] for name in keep}
    for spec in tiny["ablations"].values():
        spec["train"] = {}
        if spec["counterpart"] not in keep:
            spec["counterpart"] = None
    tiny["train"].update(epochs=1, device="cpu")
    tiny["evaluate"].update(ablations=keep, bootstrap_resamples=20, qpert_ablations=[])
    if "replicates" in tiny:
        tiny["replicates"].update(ablations=keep, seeds=tiny["replicates"]["seeds"][:1])
    return tiny


def copy_working_tree(dest: Path) -> None:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if source.is_file():  # a tracked file deleted in the working tree is left out, as a commit would
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name, follow_symlinks=False)


def project_env(root: Path) -> dict[str, str]:
    """The environment of commands run in the copy at `root`: its own package first, this venv's dvc and stacmr,
    no MLflow or DVC variables of the caller (the runs land in the copy's own store)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    venv_bin = Path(sys.prefix) / "bin"
    return {**base, "PYTHONPATH": str(root / "src"), "PATH": f"{venv_bin}{os.pathsep}{base['PATH']}"}


def run(args: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    """The stdout of `args` run in `cwd`; a failure shows the ends of its stdout and stderr."""
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{' '.join(args)} in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


def make_project(dest: Path) -> dict[str, str]:
    """The tiny copy at `dest`, committed on branch main; returns `project_env(dest)`."""
    copy_working_tree(dest)
    params = yaml.safe_load((dest / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(tiny_params(params), sort_keys=False))
    (dest / "data").mkdir(exist_ok=True)  # data.dvc records an empty folder on the synthetic default
    env = project_env(dest)
    run([*GIT, "init", "--quiet", "--initial-branch", "main"], dest, env)
    run([*GIT, "add", "--all"], dest, env)
    run([*GIT, "commit", "--quiet", "-m", "tiny world"], dest, env)
    return env


def run_queue(
    root: Path, env: dict[str, str], experiments: dict[str, list[str]], jobs: int
) -> tuple[dict[str, str], int]:
    """Queue `experiments` (name → the stages it reproduces) in the project at `root` and run them on `jobs` queue
    workers (`dvc queue start -j`), with the MLflow store created first, as the README says; waits for the queue to
    empty. Returns each experiment's status as `dvc queue status` gives it (Success, Failed) and the most workers
    it saw running an experiment at once."""
    run(["mlflow", "db", "upgrade", f"sqlite:///{root}/mlflow.db"], root, env)  # before the workers start
    for name, targets in experiments.items():
        run(["dvc", "exp", "run", "--queue", "--name", name, *targets], root, env)
    # the workers it starts keep its stdout and stderr open: not pipes, which a caller would read until they end
    start = ["dvc", "queue", "start", "--jobs", str(jobs)]
    subprocess.run(start, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    deadline, most_active = time.monotonic() + 1800, 0
    while True:
        shown = run(["dvc", "queue", "status"], root, env)
        rows = [line.split() for line in shown.splitlines()]
        statuses = {row[1]: row[-1] for row in rows if len(row) >= 4 and row[1] in experiments}
        if active := re.search(r"Worker status: (\d+) active", shown):
            most_active = max(most_active, int(active.group(1)))
        if len(statuses) == len(experiments) and not {"Queued", "Running"} & set(statuses.values()):
            return statuses, most_active
        assert time.monotonic() < deadline, f"the queue did not finish in 30 min: {statuses}"
        time.sleep(1)
