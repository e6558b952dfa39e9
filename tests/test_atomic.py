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
