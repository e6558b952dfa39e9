"""Wall time of the tiny grid's trainings on DVC's queue with 1 worker against 2 (`dvc queue start -j`).

For each worker count: a fresh tiny copy of the project (`tests.helpers.project`: the working tree, params shrunk to
the claims' two ablations, one extra seed each, one epoch), its upstream stages reproduced once and committed (not
timed), then one queued experiment per training stage (`train@…`, `train_seed@…`) run on the queue until it is empty
(timed: from `dvc queue start` to the last experiment's end, the MLflow store created first). The copies live in a
temporary folder, deleted afterwards. Prints a JSON object: seconds per worker count and the ratio 1 worker / 2.

Usage (from the repo root): .venv/bin/python benchmarks/queue_workers.py
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.helpers: the tiny project the tests use

from tests.helpers.project import GIT, make_project, run, run_queue

TRAININGS = ("train@", "train_seed@")


def grid_seconds(folder: Path, jobs: int) -> tuple[float, int]:
    """(seconds the queue took with `jobs` workers, number of experiments) on a fresh tiny project in `folder`."""
    env = make_project(folder)
    run(["dvc", "repro", "neighbours"], folder, env)
    run([*GIT, "commit", "--quiet", "-am", "upstream"], folder, env)
    stages = [s for s in run(["dvc", "stage", "list", "--name-only"], folder, env).split() if s.startswith(TRAININGS)]
    experiments = {stage.replace("@", "-"): [stage] for stage in stages}
    started = time.monotonic()
    statuses, _ = run_queue(folder, env, experiments, jobs)
    seconds = time.monotonic() - started
    if set(statuses.values()) != {"Success"}:
        raise SystemExit(f"queue with {jobs} workers: {statuses}")
    return seconds, len(experiments)


def main() -> None:
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for jobs in (1, 2):
            seconds, n = grid_seconds(Path(tmp) / f"jobs{jobs}", jobs)
            results[f"workers_{jobs}_s"] = round(seconds, 1)
    results["experiments"] = n
    results["ratio_1_over_2"] = round(results["workers_1_s"] / results["workers_2_s"], 2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
