"""A team shares results through a DVC remote: a repo made from this working tree (its tracked and unignored files,
so uncommitted edits count) reproduces the whole pipeline (dvc.yaml, report included) on a tiny world and pushes it
to a local folder remote; a `git clone` of it pulls it, finds it up to date, and `stacmr verify` gives the same
verdicts in both. About four minutes on two cores."""

from __future__ import annotations

import pytest
import yaml

from tests.helpers import REPO
from tests.helpers.project import GIT, make_project, project_env, run


@pytest.mark.slow
def test_push_clone_pull_is_up_to_date_with_the_same_verdicts(tmp_path):
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    origin, clone, remote = tmp_path / "origin", tmp_path / "clone", tmp_path / "remote"
    env, clone_env = make_project(origin), project_env(clone)
    # every stage of dvc.yaml (what `dvc repro` runs); not pipelines/extract, whose dvc.lock the copy also holds
    targets = list(yaml.safe_load((origin / "dvc.yaml").read_text())["stages"])
    run(["dvc", "repro", *targets], origin, env)
    run(["dvc", "remote", "add", "-d", "team", str(remote)], origin, env)
    run([*GIT, "add", "--all"], origin, env)
    run([*GIT, "commit", "--quiet", "-m", "results"], origin, env)
    run(["dvc", "push"], origin, env)

    run([*GIT, "clone", "--quiet", str(origin), str(clone)], tmp_path, clone_env)
    assert not (clone / "artifacts").exists()
    run(["dvc", "pull", "--with-deps", *targets], clone, clone_env)
    checkpoints = sorted((origin / "artifacts").rglob("*.pt"))
    assert checkpoints
    for path in checkpoints:
        assert (clone / path.relative_to(origin)).read_bytes() == path.read_bytes(), path
    assert "up to date" in run(["dvc", "status", "--with-deps", *targets], clone, clone_env)
    rerun = run(["dvc", "repro", *targets], clone, clone_env)
    assert "Running stage" not in rerun, rerun

    verify = ["stacmr", "verify", "--params", "params.yaml", "--claims", "paper_claims.yaml"]
    verify += ["--metrics", "reports/metrics", "--models", "artifacts/models", "--ranks", "artifacts/ranks"]
    verdicts = run(verify, origin, env)
    assert verdicts.strip() and run(verify, clone, clone_env) == verdicts
