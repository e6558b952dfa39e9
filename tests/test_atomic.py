import os
import signal
import subprocess
import sys

import pytest

from stacmr.atomic import atomic_dir, atomic_path, write_text


def test_atomic_path_renames_on_success_and_cleans_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    write_text(target, "first")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError
    assert target.read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]
    assert oct(target.stat().st_mode & 0o777) != oct(0o600)


def test_atomic_dir_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "outs"
    with atomic_dir(target) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(RuntimeError), atomic_dir(target) as tmp:
        (tmp / "b").write_text("2")
        raise RuntimeError
    assert sorted(p.name for p in target.iterdir()) == ["a"]
    with atomic_dir(target) as tmp:
        (tmp / "c").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["c"]
    assert [p.name for p in tmp_path.iterdir()] == ["outs"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_write_removes_its_targets_temporaries_left_by_dead_writers_only(tmp_path):
    dead, live = _dead_pid(), os.getppid()
    stale_dir, stale_old = tmp_path / f".outs.{dead}.abc_12xy.tmp", tmp_path / f".outs.{dead}.zz99zz99.old"
    stale_dir.mkdir()
    (stale_dir / "half.h5").write_text("half")
    stale_old.mkdir()
    (tmp_path / f".outs.{dead}.q9w8e7r6.tmp").write_text("half")  # a file temporary
    kept = [
        tmp_path / f".outs.{live}.abcdefgh.tmp",  # a writer that is still running
        tmp_path / f".other.{dead}.abcdefgh.tmp",  # another output's
        tmp_path / ".outs.abcdefgh.tmp",  # no pid in the name: not ours to judge
        tmp_path / f".outs.x.{dead}.abcdefgh.tmp",  # the output "outs.x"
    ]
    for path in kept:
        path.mkdir()
    with atomic_dir(tmp_path / "outs") as tmp:
        (tmp / "a").write_text("1")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["outs", *(p.name for p in kept)])
    write_text(tmp_path / "other", "x")  # a file output cleans its own too
    assert not (tmp_path / f".other.{dead}.abcdefgh.tmp").exists()


def test_a_killed_writer_leaves_nothing_after_the_next_run(tmp_path):
    code = (
        "import sys, time\nfrom stacmr.atomic import atomic_dir\n"
        "with atomic_dir(sys.argv[1]) as tmp:\n"
        "    (tmp / 'part').write_text('half')\n    print('writing', flush=True)\n    time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "outs")], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "writing\n"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    assert len(list(tmp_path.iterdir())) == 1  # the killed writer's temporary
    with atomic_dir(tmp_path / "outs") as tmp:
        (tmp / "whole").write_text("1")
    assert [p.name for p in tmp_path.iterdir()] == ["outs"]
    assert [p.name for p in (tmp_path / "outs").iterdir()] == ["whole"]
