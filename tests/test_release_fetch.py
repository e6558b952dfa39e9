"""`fetch` with data.source release, end to end on tiny fixture archives: placed files and a download from a loopback
server (127.0.0.1) → the release format → `features` (released OCR vectors, region boxes where a split has them) →
`trainset` (the combined set); an archive from a loopback Google Drive (tests/helpers/drive.py) trusted on first use;
the url forms params accept."""

from __future__ import annotations

import functools
import gzip
import hashlib
import http.server
import io
import json
import logging
import re
import tarfile
import threading
import zipfile

import numpy as np
import pytest

from stacmr.cli import main
from stacmr.features.store import FeatureStore, store_file
from stacmr.params import ParamsError, parse_params
from tests.helpers.drive import DRIVE_URL, serve_drive

SIZES = {"ctc/train": 4, "ctc/val": 2, "ctc/dev": 2, "ctc/test": 3, "f30k/train": 3, "textcaps/train": 2}
R, D, T, E = 36, 16, 5, 300
# COCO ids of the CTC images; 101 reads "STOP" and its captions say "stop": explicit
CTC_IDS = {"train": [101, 102, 103, 104], "val": [105, 106], "dev": [101, 107], "test": [101, 107, 108]}
# the one split whose archive has region boxes (the optional `_boxes.npy`): every slot the whole 640 × 480 image
TEST_BOXES = np.tile(np.array([0, 0, 640, 480], np.float32), (len(CTC_IDS["test"]), R, 1))


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


def _split(prefix: str, ids: list, rng) -> dict[str, bytes]:
    n = len(ids)
    ocr = np.zeros((n, T, E), np.float32)
    ocr[0, :2] = rng.standard_normal((2, E))
    caps = "".join(
        f"a red stop sign number {k} near image {i}\n" if i == 101 else f"a plate of food {k}\n"
        for i in ids
        for k in range(5)
    )
    files = {
        f"{prefix}_ims.npy": _npy(rng.standard_normal((n, R, D)).astype(np.float32)),
        f"{prefix}_caps.txt": caps.encode(),
        f"{prefix}_ids.txt": "".join(f"{i}\n" for i in ids).encode(),
        f"{prefix}_ocr_feats.npy": _npy(ocr),
    }
    if prefix == "CTC/test":
        files[f"{prefix}_boxes.npy"] = _npy(TEST_BOXES)
    return files


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        self.server.requests.append(self.path)


@pytest.fixture
def release_world(tmp_path, tiny_raw, write_params):
    rng = np.random.default_rng(0)
    data, served = tmp_path / "data", tmp_path / "served"
    data.mkdir()
    served.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_Quiet, directory=str(served)))
    httpd.requests = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    (served / "101.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with tarfile.open(data / "ctc_features.tar.gz", "w:gz") as tar:
        for split, ids in CTC_IDS.items():
            for name, payload in _split(f"CTC/{split}", ids, rng).items():
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(data / "train_features.zip", "w") as zf:
        for source in ("f30k", "textcaps"):
            ids = [f"{source}{i}" for i in range(SIZES[f"{source}/train"])]
            for name, payload in _split(f"{source}/train", ids, rng).items():
                zf.writestr(name, payload)
    lines = [
        {"image_id": 101, "annotations": [{"text": "STOP", "legibility": 0, "language": 0}]},
        {"image_id": 107, "annotations": [{"text": "EXIT", "legibility": 1, "language": 0}]},
    ]
    body = gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode())
    (served / "cocotext.jsonl.gz").write_bytes(body)
    captions = {
        "images": [{"id": 101, "coco_url": f"{base}/101.jpg", "file_name": "101.jpg"}],
        "annotations": [{"image_id": 101, "caption": f"a stop sign {k}"} for k in range(5)],
    }
    (data / "captions_train2014.json").write_text(json.dumps(captions))

    release = tiny_raw["release"]
    tiny_raw["data"]["source"] = "release"
    release["ctc_features"]["file"] = "ctc_features.tar.gz"
    release["ctc_annotations"]["url"] = None
    release["cocotext"].update(
        file="cocotext.jsonl.gz",
        url=f"{base}/cocotext.jsonl.gz",
        sha256=hashlib.sha256(body).hexdigest(),
    )
    release["coco_captions"].update(file="captions_train2014.json", url=None)
    release["download_images"] = True
    yield tmp_path, write_params(tiny_raw), httpd
    httpd.shutdown()
    httpd.server_close()


def _fetch(root, params):
    flags = ["--data", str(root / "data"), "--downloads", str(root / "downloads"), "--out", str(root / "raw")]
    return main(["fetch", "--params", str(params), *flags])


def test_release_fetch_features_and_trainset(release_world):
    root, params, httpd = release_world
    assert _fetch(root, params) == 0
    raw = root / "raw"
    assert (root / "downloads" / "cocotext.jsonl.gz").exists()
    assert sorted(httpd.requests) == ["/101.jpg", "/cocotext.jsonl.gz"]  # the one CTC image with a known coco_url
    assert (root / "downloads" / "images" / "101.jpg").read_bytes() == (root / "served" / "101.jpg").read_bytes()
    assert (raw / "ctc" / "test_ocr_feats.npy").stat().st_ino == next(
        (root / "downloads" / "extracted" / "ctc_features").rglob("test_ocr_feats.npy")
    ).stat().st_ino
    manifest = json.loads((raw / "manifest.json").read_text())
    assert manifest["cocotext.jsonl.gz"]["verified"] is True
    assert manifest["ctc_features.tar.gz"]["url"] == "placed by the user"
    check = json.loads((raw / "ctc" / "rebuild_check.json").read_text())
    assert check["rebuilt_images"] == 1 and check["splits"]["dev"] == {"images": 2, "rebuilt": 1, "explicit": 1}
    anns = json.loads((raw / "ctc" / "annotations.json").read_text())["images"]
    by_key = {(a["split"], a["id"]): a for a in anns}
    assert by_key[("dev", "101")]["scene_text"] == ["STOP"] and by_key[("dev", "107")]["scene_text"] == []
    assert by_key[("test", "101")]["coco_url"].endswith("/101.jpg")

    features = ["features", "--params", str(params), "--raw", str(raw), "--out", str(root / "features")]
    assert main(features) == 0
    assert not (root / "features" / "ocr_fasttext.bin").exists()  # released vectors: no fastText model
    with FeatureStore(store_file(root / "features", "ctc/dev")) as dev:
        assert dev["explicit"][:].tolist() == [True, False]
        assert dev["ocr_mask"][:].sum(axis=1).tolist() == [2, 0]
        assert dev.sizes["E"] == E and dev.sizes["R"] == R
        assert np.isnan(dev["region_boxes"][:]).all()  # no box file in the archive: no box known
    assert not (raw / "ctc" / "dev_boxes.npy").exists()
    with FeatureStore(store_file(root / "features", "ctc/test")) as test:
        np.testing.assert_array_equal(test["region_boxes"][:], TEST_BOXES)
    trainset = ["trainset", "--params", str(params), "--features", str(root / "features")]
    assert main([*trainset, "--out", str(root / "trainset.h5"), "--vocab", str(root / "vocab.json")]) == 0
    with FeatureStore(root / "trainset.h5") as train:
        assert len(train) == SIZES["f30k/train"] + SIZES["textcaps/train"] + SIZES["ctc/train"]
        assert list(train["image_ids"][:3].astype(str)) == ["f30k0", "f30k1", "f30k2"]

    # a rerun neither downloads nor unpacks again, and gives the same release format
    before = (root / "downloads" / "extracted" / "ctc_features").stat().st_mtime_ns
    assert _fetch(root, params) == 0
    assert len(httpd.requests) == 2
    assert (root / "downloads" / "extracted" / "ctc_features").stat().st_mtime_ns == before


def test_layout_that_does_not_match_lists_what_the_archive_holds(release_world, capsys, tiny_raw, write_params):
    root, _, _ = release_world
    raw = json.loads(json.dumps(tiny_raw))
    raw["release"]["layout"]["ctc/val"] = "ctc_features:full_val"
    assert _fetch(root, write_params(raw, "other.yaml")) == 2
    err = capsys.readouterr().err
    assert "no file(s) matching full_val_ims.npy for release.layout.ctc/val" in err
    assert "CTC/dev_ims.npy" in err and not (root / "raw").exists()


def test_placed_file_with_a_wrong_hash_is_refused(release_world, capsys, tiny_raw, write_params):
    root, _, _ = release_world
    raw = json.loads(json.dumps(tiny_raw))
    raw["release"]["train_features"]["sha256"] = "0" * 64
    assert _fetch(root, write_params(raw, "other.yaml")) == 2
    assert "train_features.zip: sha256 " in capsys.readouterr().err and not (root / "raw").exists()


def test_archive_from_google_drive_is_trusted_on_first_use_then_pinned(
    release_world, monkeypatch, caplog, tiny_raw, write_params
):
    root, _, _ = release_world
    archive = root / "data" / "train_features.zip"
    body = archive.read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    archive.unlink()  # not placed: downloaded from Drive
    raw = json.loads(json.dumps(tiny_raw))
    raw["release"]["train_features"].update(url=DRIVE_URL, sha256=None)
    caplog.set_level(logging.INFO, logger="stacmr")
    with serve_drive(monkeypatch, root / "cookies.txt") as drive:
        drive.body = body
        assert _fetch(root, write_params(raw, "drive.yaml")) == 0
        downloads = root / "downloads"
        assert (downloads / "train_features.zip").read_bytes() == body
        assert (downloads / "train_features.zip.sha256").read_text() == digest + "\n"
        pins = [r.getMessage() for r in caplog.records if "To pin it" in r.getMessage()]
        assert len(pins) == 1 and "under `train_features:`" in pins[0]
        assert pins[0].endswith(f"section:\n    sha256: {digest}")  # the exact params.yaml line
        manifest = json.loads((root / "raw" / "manifest.json").read_text())["train_features.zip"]
        assert (manifest["url"], manifest["sha256"], manifest["verified"]) == (DRIVE_URL, digest, False)
        assert (root / "raw" / "f30k" / "train_ims.npy").exists()

        # a rerun checks the recorded digest and asks nothing of Drive; pinned, the manifest says verified
        requests_before = len(drive.requests)
        caplog.clear()
        raw["release"]["train_features"]["sha256"] = digest
        assert _fetch(root, write_params(raw, "pinned.yaml")) == 0
        assert len(drive.requests) == requests_before and not any("To pin it" in r.getMessage() for r in caplog.records)
        manifest = json.loads((root / "raw" / "manifest.json").read_text())["train_features.zip"]
        assert manifest["verified"] is True


@pytest.mark.parametrize(
    ("url", "error"),
    [
        (None, None),
        ("https://example.org/a.zip", None),
        (DRIVE_URL, None),
        ("gdrive://short", "a Google Drive file id is 25 or more letters"),
        ("gdrive://1C2ZOM2VB8PwjD-tdqdt00F3DW7m9YznQ/view", "a Google Drive file id is 25 or more letters"),
        ("ftp://example.org/a.zip", "must be http(s)://… or gdrive://<file id>, got 'ftp://example.org/a.zip'"),
    ],
)
def test_release_url_forms(tiny_raw, url, error):
    tiny_raw["release"]["ctc_features"]["url"] = url
    if error is None:
        assert parse_params(tiny_raw).release.ctc_features.url == url
    else:
        with pytest.raises(ParamsError, match=rf"^release: url of 'ctc_features.zip'.*{re.escape(error)}"):
            parse_params(tiny_raw)
