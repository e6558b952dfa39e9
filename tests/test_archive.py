"""Safe extraction: good archives unpack; malicious ones are refused with nothing written outside (or at) the target."""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile

import pytest

from stacmr.data.archive import extract_archive
from stacmr.errors import StacmrError


def _tar(path, members):
    """members: (name, kind, payload) with kind file|dir|sym|link|fifo; payload: bytes or link target."""
    with tarfile.open(path, "w:gz") as tar:
        for name, kind, payload in members:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
                continue
            info.type = {
                "dir": tarfile.DIRTYPE,
                "sym": tarfile.SYMTYPE,
                "link": tarfile.LNKTYPE,
                "fifo": tarfile.FIFOTYPE,
                "chr": tarfile.CHRTYPE,
            }[kind]
            if kind in ("sym", "link"):
                info.linkname = payload
            tar.addfile(info)
    return path


def _outside_untouched(tmp_path):
    return sorted(p.name for p in tmp_path.iterdir())


def test_good_tar_unpacks(tmp_path):
    archive = _tar(
        tmp_path / "a.tar.gz",
        [
            ("ctc", "dir", None),
            ("ctc/test_caps.txt", "file", b"a dog\n"),
            ("ctc/latest", "sym", "test_caps.txt"),
            ("ctc/copy", "link", "ctc/test_caps.txt"),
        ],
    )
    out = extract_archive(archive, tmp_path / "out", max_bytes=1000)
    assert (out / "ctc" / "test_caps.txt").read_bytes() == b"a dog\n"
    assert (out / "ctc" / "latest").read_bytes() == b"a dog\n"
    assert (out / "ctc" / "copy").read_bytes() == b"a dog\n"


def test_good_zip_unpacks(tmp_path):
    with zipfile.ZipFile(tmp_path / "a.zip", "w") as zf:
        zf.writestr("d/test_ids.txt", "1\n2\n")
    out = extract_archive(tmp_path / "a.zip", tmp_path / "out", max_bytes=1000)
    assert (out / "d" / "test_ids.txt").read_text() == "1\n2\n"


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([("../evil.txt", "file", b"x")], "climbs out with '..'"),
        ([("ok/../../evil.txt", "file", b"x")], "climbs out with '..'"),
        ([("/tmp/evil.txt", "file", b"x")], "has an absolute path"),
        ([("esc", "sym", "../.."), ("esc/evil.txt", "file", b"x")], "points outside the archive"),
        ([("esc", "sym", "/etc"), ("esc/evil.txt", "file", b"x")], "points outside the archive"),
        ([("hard", "link", "../outside.txt")], "climbs out with '..'"),
        ([("hard", "link", "/etc/passwd")], "has an absolute path"),
        ([("hard", "link", "later.txt"), ("later.txt", "file", b"x")], "does not point to an earlier file"),
        ([("pipe", "fifo", None)], "device, FIFO or special file"),
        ([("tty", "chr", None)], "device, FIFO or special file"),
    ],
)
def test_malicious_tar_is_refused(tmp_path, members, message):
    (tmp_path / "outside.txt").write_text("precious")
    archive = _tar(tmp_path / "bad.tar.gz", members)
    (tmp_path / "out").mkdir()
    before = _outside_untouched(tmp_path)
    with pytest.raises(StacmrError, match=rf"^{archive}: .*{message}"):
        extract_archive(archive, tmp_path / "out" / "target", max_bytes=1000)
    assert _outside_untouched(tmp_path) == before
    assert not (tmp_path / "out" / "target").exists()
    assert list((tmp_path / "out").iterdir()) == []  # no temporary directory left either
    assert (tmp_path / "outside.txt").read_text() == "precious"


def test_link_chain_leaving_the_root_is_refused(tmp_path):
    # each link looks inside on its own; followed one after the other they reach the parent of the root
    archive = _tar(
        tmp_path / "chain.tar.gz",
        [("sub", "dir", None), ("sub/up", "sym", ".."), ("esc", "sym", "sub/up/.."), ("esc/evil.txt", "file", b"x")],
    )
    with pytest.raises(StacmrError, match="outside"):
        extract_archive(archive, tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("name", "message"), [("../evil.txt", "'..'"), ("/abs.txt", "absolute path")])
def test_malicious_zip_is_refused(tmp_path, name, message):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr(zipfile.ZipInfo(name), "x")
    with pytest.raises(StacmrError, match=message):
        extract_archive(tmp_path / "bad.zip", tmp_path / "out", max_bytes=1000)
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path / "out").exists()


def test_zip_symlink_is_refused(tmp_path):
    info = zipfile.ZipInfo("link")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(tmp_path / "bad.zip", "w") as zf:
        zf.writestr(info, "../../etc")
    with pytest.raises(StacmrError, match="is a symlink"):
        extract_archive(tmp_path / "bad.zip", tmp_path / "out", max_bytes=1000)


def test_archive_over_the_size_cap_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "big.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.bin", b"\0" * 10_000)  # compresses to a few dozen bytes
    with pytest.raises(StacmrError, match=r"unpacks to more than 5000 bytes \(release.max_unpacked_bytes\)"):
        extract_archive(tmp_path / "big.zip", tmp_path / "out", max_bytes=5000)
    archive = _tar(tmp_path / "big.tar.gz", [("a", "file", b"\0" * 3000), ("b", "file", b"\0" * 3000)])
    with pytest.raises(StacmrError, match="unpacks to more than 5000 bytes"):
        extract_archive(archive, tmp_path / "out", max_bytes=5000)
    assert not (tmp_path / "out").exists()


def test_truncated_archive_is_a_clear_error(tmp_path):
    archive = _tar(tmp_path / "a.tar.gz", [("f", "file", bytes(range(256)) * 64)])
    archive.write_bytes(archive.read_bytes()[:40])
    with pytest.raises(StacmrError, match=rf"^{archive}: "):
        extract_archive(archive, tmp_path / "out", max_bytes=100_000)
    assert not (tmp_path / "out").exists()
