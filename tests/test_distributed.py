"""Data-parallel training (`stacmr.training.processes`, `stacmr.models.shards`): N processes with a global batch of
B take the steps of one process with batch B, the hinge's negatives coming from the whole global batch; a killed
multi-process run resumes to the weights of an uninterrupted one; the run's identity does not name N. All on the
CPU with gloo, two processes on this machine."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
import torch
import torch.multiprocessing as mp
import yaml

from stacmr.errors import StacmrError
from stacmr.models.shards import SINGLE, Shards
from stacmr.training import processes
from stacmr.training.checkpoint import BestCheckpoint, LastCheckpoint, load_checkpoint
from tests.helpers.distributed import FAMILIES, make_training_store, run_steps, worker
from tests.helpers.loopback import free_port
from tests.helpers.params import shrink
from tests.helpers.stages import train_argv

TOLERANCE = 1e-5  # the bound on the difference in loss, gradients and parameters
NOISE = 1e-7  # a gradient below it is float32 rounding noise (the other gradients of these models are > 1e-4)


@pytest.fixture(scope="module")
def two_and_one(tmp_path_factory, repo_params) -> tuple[dict, dict, dict]:
    """(rank 0's results, rank 1's results, one process's results) of `run_steps` on the same store."""
    folder = tmp_path_factory.mktemp("ddp")
    (folder / "params.yaml").write_text(yaml.safe_dump(shrink(repo_params)))
    store, vocab = make_training_store(folder)
    vocab.save(folder / "vocab.json")
    mp.start_processes(worker, args=(2, free_port(), folder), nprocs=2, start_method="spawn")
    single = run_steps(folder / "params.yaml", store, vocab, SINGLE)
    return torch.load(folder / "rank0.pt"), torch.load(folder / "rank1.pt"), single


@pytest.mark.parametrize("family", FAMILIES)
def test_two_processes_take_the_steps_of_one(two_and_one, family):
    rank0, rank1, single = two_and_one
    split, whole = rank0[family], single[family]
    assert split["losses"].keys() == whole["losses"].keys()
    for term, value in whole["losses"].items():
        assert split["losses"][term] == pytest.approx(value, rel=TOLERANCE, abs=TOLERANCE), term
    assert split["losses"] == rank1[family]["losses"]  # every process reports the global batch's loss
    assert split["grads"].keys() == whole["grads"].keys()
    for name, grad in whole["grads"].items():  # the last step's gradients, summed over the two processes
        diff = (split["grads"][name] - grad).abs().max().item()
        assert diff <= TOLERANCE, f"{family} {name}: its gradient differs from one process's by {diff:.2e}"
    for name, tensor in whole["state"].items():
        got = split["state"][name]
        assert torch.equal(got, rank1[family]["state"][name]), f"{name}: the two processes' weights differ"
        if not tensor.is_floating_point():
            assert torch.equal(got, tensor), name
            continue
        diff = (got - tensor).abs()
        # A weight whose gradient is zero in exact arithmetic (the bias of a Linear before a batch norm, an
        # attention key's bias: a softmax ignores it) has a gradient of float32 rounding noise (~1e-9) in any run;
        # Adam steps it by about ±lr on the noise's sign, so it is bounded by the steps taken, not by 1e-5. (The
        # last step's gradient tells them; it also exempts, needlessly, the rows of words that step did not see.)
        grad = whole["grads"].get(name)
        noise = grad.abs() < NOISE if grad is not None else torch.zeros_like(tensor, dtype=torch.bool)
        assert diff.masked_fill(noise, 0).max().item() <= TOLERANCE, f"{family} {name}"
        assert diff.masked_fill(~noise, 0).max().item() <= 2 * whole["steps"] * whole["lr"], f"{family} {name}"


def test_torchrun_environment(monkeypatch):
    for name in processes.TORCHRUN:
        monkeypatch.delenv(name, raising=False)
    assert processes.from_environment() == (SINGLE, 0)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert processes.from_environment() == (Shards(1, 2), 1)
    monkeypatch.setenv("WORLD_SIZE", "x")
    with pytest.raises(StacmrError, match="torchrun's environment"):
        processes.from_environment()
    monkeypatch.delenv("LOCAL_RANK")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(StacmrError, match="LOCAL_RANK=None"):
        processes.from_environment()
    with pytest.raises(ValueError, match="rank 2 of 2"):
        Shards(2, 2)


def _torchrun(argv: list[str], **popen) -> subprocess.Popen:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*command, "-m", "stacmr", *argv], env=env, start_new_session=True, **popen)


def _states_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_weights(pipeline, tmp_path, tiny_raw, write_params, monkeypatch):
    root, _ = pipeline
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path}/mlflow.db")
    tiny_raw["train"]["epochs"] = 4
    params = write_params(tiny_raw)
    ablation = "starnet_all"  # dropout in its caption decoder: each process's draws, reseeded every epoch
    whole = _torchrun(train_argv(root, tmp_path / "whole", ablation, params), stderr=subprocess.PIPE, text=True)
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-3000:]

    last = tmp_path / "cut/models" / ablation / "last.pt"
    cut_argv = [*train_argv(root, tmp_path / "cut", ablation, params), "--resume"]
    proc = _torchrun(cut_argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not last.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.02)
    # torchrun and both processes, after the first checkpoint (torchrun starts its workers in sessions of their own)
    for process in [*psutil.Process(proc.pid).children(recursive=True), psutil.Process(proc.pid)]:
        process.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last, LastCheckpoint).epoch
    assert killed_at < 4, "the run finished before it could be killed"
    resumed = _torchrun(cut_argv, stderr=subprocess.PIPE, text=True)
    _, err = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, err[-3000:]
    assert f"resuming from {last} after epoch {killed_at}" in err

    a = load_checkpoint(tmp_path / "whole/models" / ablation / "last.pt", LastCheckpoint)
    b = load_checkpoint(last, LastCheckpoint)
    assert _states_equal(a.model, b.model) and a.history == b.history
    best_a = load_checkpoint(tmp_path / "whole/models" / ablation / "best.pt", BestCheckpoint)
    best_b = load_checkpoint(tmp_path / "cut/models" / ablation / "best.pt", BestCheckpoint)
    assert best_a.epoch == best_b.epoch and _states_equal(best_a.model, best_b.model)

    # the run's identity does not name the number of processes: a one-process run of the same batch has its spec
    from stacmr.cli import main

    assert main(train_argv(root, tmp_path / "one", ablation, params)) == 0
    assert load_checkpoint(tmp_path / "one/models" / ablation / "last.pt", LastCheckpoint).spec == a.spec

    # only the first process reports: one MLflow run per training, each finished
    from mlflow.tracking import MlflowClient

    client = MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    runs = client.search_runs([client.get_experiment_by_name("stacmr").experiment_id])
    assert sorted(r.info.status for r in runs).count("FINISHED") == 3  # whole, resumed cut, one
    assert len(runs) == 4  # and the killed one, left RUNNING
