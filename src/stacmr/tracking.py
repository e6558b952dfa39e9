"""MLflow tracking: the one module that imports mlflow. It mirrors a training run into MLflow,
finds the run that made a checkpoint by the checkpoint's sha256 (`checkpoint_run`: the evaluate stages mirror their
metrics into it), so that no DVC output holds a run id or a path of one machine.

The DVC metrics JSON is the record; MLflow is a view of it, so tracking never
stops training: the first failure (store unreachable, database locked, bad URI, server error) logs one warning on the
`stacmr` logger and turns every later call into a no-op.

Reads `$MLFLOW_TRACKING_URI`, `$DVC_ROOT`, `$DVC_STAGE`, `$DVC_EXP_NAME`, `$DVC_EXP_BASELINE_REV` and the git state
of the repo root. Writes, by default, to
`<repo root>/mlflow.db` (runs, params, metrics, tags) and `<repo root>/mlruns/<run id>/artifacts`, with
`<repo root>/mlflow.db.lock` held while the database is created; a plain `mlflow ui` run from the repo root reads
the same database.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import platform
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.validation import MAX_PARAM_VAL_LENGTH, MAX_TAG_VAL_LENGTH

from stacmr.workspace import GitError, git, repo_root

log = logging.getLogger("stacmr")

EXPERIMENT = "stacmr"  # one MLflow experiment for the project
# the experiment's kind for the MLflow UI: its model-training view, not the GenAI one (issue 17.7)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
CHECKPOINT_TAG = "checkpoint_sha256"  # a training run's tag: sha256 of its best.pt, by which later stages find it
# what the pipeline itself rewrites in a checkout (git pathspecs): not uncommitted work, so not in `git_dirty`
PIPELINE_WRITES = ("dvc.lock", "reports", "artifacts", "dvc_plots", "mlruns", "mlflow.db*")


def tracking_uri() -> str:
    """`$MLFLOW_TRACKING_URI` (a team's shared server), else the sqlite database at the repo root.

    The path is absolute so that a stage run from any cwd writes where `mlflow ui` (default store
    `sqlite:///mlflow.db`, relative to its cwd) looks when started from the repo root.
    """
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root()}/mlflow.db"


def _render(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_render(v) for v in value) + "]"
    return str(value)


def flatten(params: dict, prefix: str = "") -> dict[str, str]:
    """`{"a": {"b": {"c": 1}}}` → `{"a.b.c": "1"}`; a list or tuple becomes `[x, y]`, an empty section `{}`."""
    flat: dict[str, str] = {}
    for key, value in params.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, name))
        else:
            flat[name] = _render(value)
    return flat


def _sqlite_path(uri: str) -> Path | None:
    """The database file of a `sqlite:///` URI (relative to the cwd, as SQLAlchemy reads it); None otherwise."""
    if not uri.startswith("sqlite:///"):
        return None
    path = uri.removeprefix("sqlite:///").split("?", 1)[0]
    return Path(path) if path and path != ":memory:" else None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """Serialise the first use of a sqlite store: two processes that find no database both run MLflow's schema
    migrations, and one fails (`duplicate column name: step`, seen with mlflow 3.17.2), or both create the
    experiment."""
    db = _sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(db.with_name(db.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _artifact_location(uri: str) -> str | None:
    """`mlruns/` beside a sqlite database; MLflow's own default is `./mlruns` of whatever the cwd happens to be."""
    db = _sqlite_path(uri)
    return (db.resolve().parent / "mlruns").as_uri() if db is not None else None


def _experiment_id(client: MlflowClient, name: str, artifact_location: str | None) -> str:
    """The id of experiment `name`, created if missing; either way tagged with `EXPERIMENT_KIND`."""
    kind, value = EXPERIMENT_KIND
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location, tags={kind: value})
        except MlflowException as exc:
            # A tracking server has no file lock: a parallel stage may have created the experiment since we looked.
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            experiment = client.get_experiment_by_name(name)
    if experiment.tags.get(kind) != value:
        client.set_experiment_tag(experiment.experiment_id, kind, value)
    return experiment.experiment_id


def _redacted(text: str) -> str:
    """Hide the passwords in a URI or in a message quoting one (`pg://u:secret@h/db` → `pg://u:***@h/db`)."""
    return re.sub(r"//([^/:@]*):[^/@]*@", r"//\1:***@", text)


class Tracker:
    """One MLflow run, as a context manager; every method is a no-op once tracking has failed.

    with Tracker("stacmr", "train") as tracker:
        tracker.set_tags(provenance_tags())
        tracker.log_params(params_dict(params))
        tracker.log_metrics({"rsum": 412.3}, step=epoch)
    """

    def __init__(self, experiment: str, run_name: str, uri: str | None = None, run_id: str | None = None) -> None:
        """A new run named `run_name`, or with `run_id` more results for an existing run (an evaluation mirrored
        into its training run), whose status is then left as it was."""
        self.experiment = experiment
        self.run_name = run_name
        self.uri = uri or tracking_uri()
        self.run_id: str | None = run_id
        self._attached = run_id is not None
        self._client: MlflowClient | None = None  # None: not started, ended, or failed

    def __enter__(self) -> Tracker:
        try:
            with _store_lock(self.uri):
                client = MlflowClient(tracking_uri=self.uri)
                experiment_id = _experiment_id(client, self.experiment, _artifact_location(self.uri))
            if self._attached:
                client.get_run(self.run_id)  # fails (once, as a warning) when the run is not in this store
            else:
                self.run_id = client.create_run(experiment_id, run_name=self.run_name).info.run_id
            self._client = client
        except Exception as exc:
            self._fail(exc)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        status = "FINISHED" if exc_type is None else "FAILED"
        if not self._attached:
            self._attempt(lambda client: client.set_terminated(self.run_id, status=status))
        self._client = None
        # Returning None lets the user's exception, if any, propagate.

    def log_params(self, params: dict) -> None:
        """Log a nested params dict, flattened to dotted keys; values past MLflow's limit are cut to fit."""
        entries = [Param(k, v[:MAX_PARAM_VAL_LENGTH]) for k, v in flatten(params).items()]
        self._attempt(lambda client: client.log_batch(self.run_id, params=entries))

    def set_tags(self, tags: dict[str, str]) -> None:
        entries = [RunTag(k, str(v)[:MAX_TAG_VAL_LENGTH]) for k, v in tags.items()]
        self._attempt(lambda client: client.log_batch(self.run_id, tags=entries))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        now_ms = int(time.time() * 1000)
        entries = [Metric(k, float(v), now_ms, step) for k, v in metrics.items()]
        self._attempt(lambda client: client.log_batch(self.run_id, metrics=entries))

    def log_artifact(self, path: str | os.PathLike, artifact_path: str | None = None) -> None:
        """Copy a file, or a directory under its own name, into the run's artifacts (under `artifact_path` if given)."""
        self._attempt(lambda client: client.log_artifact(self.run_id, os.fspath(path), artifact_path))

    def _attempt(self, action: Callable[[MlflowClient], object]) -> None:
        if self._client is None:
            return
        try:
            action(self._client)
        except Exception as exc:
            self._fail(exc)

    def _fail(self, exc: Exception) -> None:
        self._client = None
        lines = str(exc).strip().splitlines()
        log.warning(
            "MLflow tracking at %s failed (%s: %s); training goes on untracked",
            _redacted(self.uri),
            type(exc).__name__,
            _redacted(lines[0]) if lines else "no message",  # MLflow's HTTP errors repeat the URI
        )


def checkpoint_run(checkpoint_sha256: str, uri: str | None = None) -> str | None:
    """The id of the newest run of experiment `stacmr` tagged `checkpoint_sha256`, in the store of this checkout
    (`tracking_uri()`) unless `uri`; None, said in one info line, when the store is missing or unreadable or holds no
    such run. Never creates a store."""
    uri = uri or tracking_uri()
    db = _sqlite_path(uri)
    if db is not None and not db.exists():
        log.info("no MLflow store at %s: checkpoint %s has no run to find", _redacted(uri), checkpoint_sha256[:12])
        return None
    try:
        client = MlflowClient(tracking_uri=uri)
        experiment = client.get_experiment_by_name(EXPERIMENT)
        query = f"tags.{CHECKPOINT_TAG} = '{checkpoint_sha256}'"
        order = ["attributes.start_time DESC"]
        runs = [] if experiment is None else client.search_runs([experiment.experiment_id], query, order_by=order)
    except Exception as exc:
        log.info("MLflow store %s not readable (%s)", _redacted(uri), type(exc).__name__)
        return None
    if not runs:
        log.info("no MLflow run of checkpoint %s in %s", checkpoint_sha256[:12], _redacted(uri))
        return None
    return runs[0].info.run_id


def _git(root: Path, *args: str) -> str | None:
    """The stdout of a git command in `root`, or None when git is missing or `root` is not a work tree."""
    try:
        return git(root, *args)
    except GitError:
        return None


def _dirty_paths(root: Path) -> list[str] | None:
    """The paths of the work tree of `root` with uncommitted changes, untracked ones included, sorted, but for what
    the pipeline itself rewrites (`PIPELINE_WRITES`); None when `root` is in no git work tree."""
    excluded = [f":(exclude){path}" for path in PIPELINE_WRITES]
    status = _git(root, "status", "--porcelain", "-z", "--", ":/", *excluded)
    if status is None:
        return None
    entries = iter(status.split("\0"))
    paths = []
    for entry in entries:
        if entry:
            paths.append(entry[3:])  # "XY path"
            if "R" in entry[:2] or "C" in entry[:2]:
                next(entries)  # a rename or copy: its source path follows
    return sorted(paths)


def _listed(paths: list[str], limit: int = MAX_TAG_VAL_LENGTH) -> str:
    """`a,b,c` in at most `limit` characters: the paths that fit, then `… (+n more)`."""
    text = ",".join(paths)
    if len(text) <= limit:
        return text
    room = limit - len(f",… (+{len(paths)} more)")
    kept, size = [], -1  # size: of the kept paths joined by commas
    for path in paths:
        size += 1 + len(path)
        if size > room:
            break
        kept.append(path)
    return ",".join([*kept, f"… (+{len(paths) - len(kept)} more)"])


def extraction_tags(extraction: dict[str, dict]) -> dict[str, str]:
    """Which OCR engine and backbone made each extracted split of a run's stores (`FeatureStore.extraction`):
    the OCR engine changes results significantly (StacMR issue #1), so a run says which one it saw."""
    return {
        f"extract.{name}.{part}": f"{made[part]['name']} {made[part]['version']}"
        for name, made in extraction.items()
        for part in ("ocr_engine", "backbone")
    }


def provenance_tags() -> dict[str, str]:
    """Where a run came from: git commit of the repo root, whether it has uncommitted work (`git_dirty`) and where
    (`git_dirty_files`, the pipeline's own outputs left out), DVC stage, the DVC experiment (`dvc exp run`, with
    or without `--temp` or `--queue`, sets `$DVC_EXP_NAME` and `$DVC_EXP_BASELINE_REV`; `dvc repro` neither), torch
    and python versions."""
    import torch  # lazily: importing this module should not cost a torch import

    root = repo_root()
    commit = _git(root, "rev-parse", "HEAD")
    dirty = _dirty_paths(root) if commit is not None else None
    tags = {
        "git_commit": commit.strip() if commit is not None else "unknown",
        "git_dirty": "unknown" if dirty is None else ("true" if dirty else "false"),
        "dvc_stage": os.environ.get("DVC_STAGE", "-"),
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }
    if dirty:
        tags["git_dirty_files"] = _listed(dirty)
    for name in ("DVC_EXP_NAME", "DVC_EXP_BASELINE_REV"):
        if value := os.environ.get(name):
            tags[name.lower()] = value
    return tags
