"""A team shares results through a DVC remote: a repo made from this working tree (its tracked and unignored files,
so uncommitted edits count) reproduces the whole pipeline (dvc.yaml, report included) on a tiny world and pushes it
to a local folder remote; a `git clone` of it pulls it, finds it up to date, and `stacmr verify` gives the same
verdicts in both. About four minutes on two cores."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import REPO
from tests.helpers.params import shrink


def _tiny(raw: dict) -> dict:
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


def _copy_working_tree(dest: Path) -> None:
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


def _run(args: list[str], cwd: Path, env: dict) -> str:
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, f"{' '.join(args)} in {cwd}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.mark.slow
def test_push_clone_pull_is_up_to_date_with_the_same_verdicts(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"
    _copy_working_tree(origin)
    params = yaml.safe_load((origin / "params.yaml").read_text())
    (origin / "params.yaml").write_text(yaml.safe_dump(_tiny(params), sort_keys=False))
    (origin / "data").mkdir(exist_ok=True)  # data.dvc records an empty folder on the synthetic default
    # every stage of dvc.yaml (what `dvc repro` runs); not pipelines/extract, whose dvc.lock the copy also holds
    targets = list(yaml.safe_load((origin / "dvc.yaml").read_text())["stages"])

    venv_bin = Path(sys.prefix) / "bin"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}  # runs land in the repo
    git = ["git", "-c", "user.name=stacmr test", "-c", "user.email=test@stacmr.invalid"]

    def env(root: Path) -> dict:
        return {**base, "PYTHONPATH": str(root / "src"), "PATH": f"{venv_bin}{os.pathsep}{base['PATH']}"}

    _run([*git, "init", "--quiet", "--initial-branch", "main"], origin, env(origin))
    _run([*git, "add", "--all"], origin, env(origin))
    _run([*git, "commit", "--quiet", "-m", "tiny world"], origin, env(origin))
    _run(["dvc", "repro", *targets], origin, env(origin))
    _run(["dvc", "remote", "add", "-d", "team", str(remote)], origin, env(origin))
    _run([*git, "add", "--all"], origin, env(origin))
    _run([*git, "commit", "--quiet", "-m", "results"], origin, env(origin))
    _run(["dvc", "push"], origin, env(origin))

    _run([*git, "clone", "--quiet", str(origin), str(clone)], tmp_path, env(clone))
    assert not (clone / "artifacts").exists()
    _run(["dvc", "pull", "--with-deps", *targets], clone, env(clone))
    checkpoints = sorted((origin / "artifacts").rglob("*.pt"))
    assert checkpoints
    for path in checkpoints:
        assert (clone / path.relative_to(origin)).read_bytes() == path.read_bytes(), path
    assert "up to date" in _run(["dvc", "status", "--with-deps", *targets], clone, env(clone))
    rerun = _run(["dvc", "repro", *targets], clone, env(clone))
    assert "Running stage" not in rerun, rerun

    verify = ["stacmr", "verify", "--params", "params.yaml", "--claims", "paper_claims.yaml"]
    verify += ["--metrics", "reports/metrics", "--models", "artifacts/models", "--ranks", "artifacts/ranks"]
    verdicts = _run(verify, origin, env(origin))
    assert verdicts.strip() and _run(verify, clone, env(clone)) == verdicts
