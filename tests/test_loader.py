"""The training loader: whether the features are held in RAM or read from the file, read ahead in a thread or not, an
epoch's batches (values, dtypes, order) are exactly those of one HDF5 read by index array per batch, the reader
before the loader; float16 widens exactly; a corrupt store is refused naming the image either way; the memory budget
decides what is held; the read-ahead thread keeps order, raises in place and stops when left."""

from __future__ import annotations

import re
import threading

import numpy as np
import pytest
import torch

from stacmr.errors import StacmrError
from stacmr.features import memory
from stacmr.features.memory import held, held_size, hold, memory_available
from stacmr.features.reader import encode_captions, read_images
from stacmr.features.store import FeatureStore, create_store
from stacmr.features.vocab import Vocabulary
from stacmr.models import CaptionBatch, ImageBatch
from stacmr.models.characters import encode_strings
from stacmr.prefetch import prefetch
from stacmr.training import batches
from stacmr.training.batches import epoch_order, training_batches

N, R, D, T, E, C = 37, 6, 8, 4, 5, 3
WORDS = ["a", "bus", "stop", "the", "cafe", "red", "shop"]
VOCAB = Vocabulary(["<pad>", "<start>", "<end>", "<unk>", *WORDS[:5]])  # "red" and "shop" are out of it
MAX_WORDS = 4


def write_store(path, regions: np.ndarray, **overrides: np.ndarray) -> None:
    """A store of `regions` (n, r, d) float16 and random other fields, written in blocks of 16 images."""
    n, r, d = regions.shape
    rng = np.random.default_rng(1)
    strings = np.array(["STOP", "Bus", "café", "x"])[rng.integers(0, 4, (n, T))]
    ocr_mask = rng.random((n, T)) < 0.5
    captions = [" ".join(rng.choice(WORDS, rng.integers(0, 7))) for _ in range(n * C)]  # some empty, some long
    fields = {
        "regions": regions,
        "region_count": rng.integers(1, r + 1, n).astype(np.int32),
        "ocr_emb": np.where(ocr_mask[..., None], rng.standard_normal((n, T, E)), 0).astype(np.float16),
        "ocr_mask": ocr_mask,
        "ocr_tokens": np.where(ocr_mask, strings, "").astype(object),
        "ocr_boxes": np.full((n, T, 4), np.nan, dtype=np.float32),
        "captions": np.array(captions, dtype=object).reshape(n, C),
        "image_ids": np.array([f"im{i}" for i in range(n)], dtype=object),
        "explicit": rng.random(n) < 0.5,
        **overrides,
    }
    with create_store(path, "ctc/train", {"N": n, "R": r, "D": d, "T": T, "E": E, "C": C}, {}, {}) as out:
        for start in range(0, n, 16):
            out.write(start, **{name: values[start : start + 16] for name, values in fields.items()})


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("loader") / "train.h5"
    write_store(path, np.random.default_rng(0).standard_normal((N, R, D)).astype(np.float16))
    return path


def reference_images(store: FeatureStore, rows: np.ndarray, characters: bool) -> ImageBatch:
    """The reader before the loader: one HDF5 read by index array per field and batch."""
    unique, inverse = np.unique(rows, return_inverse=True)
    regions = store["regions"][unique].astype(np.float32)[inverse]
    counts = store["region_count"][unique][inverse]
    ocr_chars = None
    if characters:
        strings = store["ocr_tokens"].asstr()[unique][inverse]
        ocr_chars = torch.from_numpy(encode_strings(strings.ravel().tolist()).reshape(*strings.shape, -1))
    return ImageBatch(
        regions=torch.from_numpy(regions),
        region_mask=torch.from_numpy(np.arange(regions.shape[1])[None, :] < counts[:, None]),
        ocr=torch.from_numpy(store["ocr_emb"][unique].astype(np.float32)[inverse]),
        ocr_mask=torch.from_numpy(store["ocr_mask"][unique][inverse]),
        ocr_chars=ocr_chars,
    )


def reference_captions(store: FeatureStore, caption_rows: np.ndarray, characters: bool) -> CaptionBatch:
    unique, inverse = np.unique(caption_rows // C, return_inverse=True)
    texts = store["captions"].asstr()[unique][inverse, caption_rows % C]
    return encode_captions(list(texts), VOCAB, MAX_WORDS, characters)


def assert_same(batch, expected) -> None:
    """Every tensor of two batches alike: dtype, shape and bits."""
    assert type(batch) is type(expected)
    for name, value in vars(expected).items():
        got = getattr(batch, name)
        if value is None:
            assert got is None, name
            continue
        assert got.dtype == value.dtype and got.shape == value.shape, name
        assert got.is_contiguous(), name
        bits = {torch.float32: torch.int32}.get(value.dtype)
        assert torch.equal(got.view(bits), value.view(bits)) if bits else torch.equal(got, value), name


@pytest.mark.parametrize("characters", [False, True])
@pytest.mark.parametrize("read_ahead", [0, 2])
@pytest.mark.parametrize("budget", [None, 0], ids=["in RAM", "from the file"])
def test_an_epoch_is_todays_batches(store_path, budget, read_ahead, characters):
    rng = np.random.default_rng(7)
    # a random epoch, then windows with repeated images and captions, runs of consecutive images and a short tail
    order = np.concatenate([epoch_order(N * C, 3, 1), rng.integers(0, N * C, 29), np.arange(20, 50), [5, 5, 5]])
    with FeatureStore(store_path) as store:
        batches = list(
            training_batches(
                store, VOCAB, 16, order, MAX_WORDS, characters, memory_budget=budget, read_ahead=read_ahead
            )
        )
        assert (held(store) is not None) == (budget is None)
        windows = [order[start : start + 16] for start in range(0, len(order), 16)]
        assert len(batches) == len(windows)
        for (images, captions), rows in zip(batches, windows, strict=True):
            assert_same(images, reference_images(store, rows // C, characters))
            assert_same(captions, reference_captions(store, rows, characters))


def test_every_float16_value_widens_exactly(tmp_path):
    finite = np.arange(2**16, dtype=np.uint32).astype(np.uint16).view(np.float16)
    finite = finite[np.isfinite(finite)]  # 63,488 values: zeros, subnormals, normals, both signs
    write_store(tmp_path / "s.h5", finite.reshape(31, 32, 64))
    expected = torch.from_numpy(finite.astype(np.float32).reshape(31, 32, 64)).view(torch.int32)
    rows = np.arange(31)[::-1]
    with FeatureStore(tmp_path / "s.h5") as store:
        streamed = read_images(store, rows).regions
        assert hold(store)
        in_ram = read_images(store, rows).regions
    for regions in (streamed, in_ram):
        assert torch.equal(regions.view(torch.int32), expected[rows.copy()])


@pytest.mark.parametrize("budget", [None, 0], ids=["in RAM", "from the file"])
def test_a_corrupt_store_is_refused_naming_the_image(tmp_path, budget):
    ocr = np.zeros((N, T, E), dtype=np.float16)
    ocr[[30, 7], 1, 2] = np.nan
    write_store(tmp_path / "s.h5", np.ones((N, R, D), dtype=np.float16), ocr_emb=ocr)
    order = np.r_[0:9, 30] * C  # images 0..8, then 30: the batch of 4 holding image 7 is the second
    seen = []
    with FeatureStore(tmp_path / "s.h5") as store:
        batches = training_batches(store, VOCAB, 4, order, MAX_WORDS, memory_budget=budget, read_ahead=2)
        with pytest.raises(
            StacmrError,
            match=rf"^{re.escape(str(tmp_path / 's.h5'))}: field 'ocr_emb': NaN or infinite value at image 7 ",
        ):
            seen.extend(batches)
        assert held(store) is None
    assert len(seen) == (0 if budget is None else 1)  # held: refused as it is read into RAM, before any batch


def test_the_budget_decides_what_is_held(store_path):
    with FeatureStore(store_path) as store:
        size = held_size(store)
        assert size == N * (R * D * 2 + 4 + T * E * 2 + T)
        assert not hold(store, size - 1) and held(store) is None
        assert hold(store, size)
        arrays = held(store)
        for name in memory.HELD:
            assert np.array_equal(arrays[name], store[name][:]) and arrays[name].dtype == store[name].dtype
        assert hold(store, 0) and held(store) is arrays  # once held, held: a later budget changes nothing


def test_available_memory_is_capped_by_the_cgroup(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "_CGROUP", tmp_path)
    assert memory_available() > 0  # no cgroup files: the machine's
    (tmp_path / "memory.max").write_text("1000\n")
    (tmp_path / "memory.current").write_text("400\n")
    assert memory_available() == 600
    (tmp_path / "memory.max").write_text("max\n")
    assert memory_available() > 600


def test_read_ahead_keeps_order_and_raises_in_place():
    def items():
        yield from range(5)
        raise ValueError("item 5")

    got = []
    with pytest.raises(ValueError, match="item 5"):
        got.extend(prefetch(items(), 3))
    assert got == [0, 1, 2, 3, 4]
    assert list(prefetch(iter(range(100)), 2)) == list(range(100))


def test_read_ahead_stops_when_left():
    made = []

    def items():
        for i in range(1000):
            made.append(i)
            yield i

    for item in prefetch(items(), 2):
        if item == 3:
            break
    assert not [t for t in threading.enumerate() if t.name == "stacmr-prefetch"]
    assert len(made) <= 3 + 1 + 2 + 1  # those taken, the queue's two and the one made while it was full


def test_no_read_ahead_reads_in_the_callers_thread():
    threads = []

    def items():
        threads.append(threading.current_thread())
        yield 1

    assert list(prefetch(items(), 0)) == [1] and threads == [threading.current_thread()]


def test_cpu_batches_are_read_in_the_steps_thread_by_default(store_path, monkeypatch):
    # a reading thread beside torch's compute threads oversubscribes a CPU's cores (1.8× a VSRN epoch on 2 cores)
    depths = []
    monkeypatch.setattr(batches, "prefetch", lambda items, depth: depths.append(depth) or items)
    with FeatureStore(store_path) as store:
        for read_ahead, expected in ((None, 0), (2, 2)):
            next(batches.training_batches(store, VOCAB, 4, epoch_order(N * C, 0, 0), MAX_WORDS, read_ahead=read_ahead))
            assert depths.pop() == expected


@pytest.mark.gpu
def test_cuda_batches_are_pinned_copies_of_the_cpu_ones(store_path):
    order = epoch_order(N * C, 0, 0)
    with FeatureStore(store_path) as store:
        cpu = list(training_batches(store, VOCAB, 16, order, MAX_WORDS, True))
        cuda = list(training_batches(store, VOCAB, 16, order, MAX_WORDS, True, device=torch.device("cuda")))
        pinned = read_images(store, order[:16] // C, True, pin=True)
    assert all(value.is_pinned() for value in vars(pinned).values())
    for got, expected in zip(cuda, cpu, strict=True):
        for batch, reference in zip(got, expected, strict=True):
            assert_same(batch.to("cpu"), reference)


def test_boxes_are_read_as_fractions_of_the_image_only_when_asked(tmp_path):
    region_boxes = np.full((N, R, 4), np.nan, dtype=np.float32)
    region_boxes[:, 0] = [64, 48, 320, 240]  # x, y, w, h in pixels
    ocr_boxes = np.full((N, T, 4), np.nan, dtype=np.float32)
    ocr_boxes[:, 1] = [0, 0, 64, 24]
    size = np.tile(np.array([640, 480], dtype=np.int32), (N, 1))
    size[3] = 0  # unknown size: no box
    path = tmp_path / "boxes.h5"
    regions = np.random.default_rng(0).standard_normal((N, R, D)).astype(np.float16)
    write_store(path, regions, region_boxes=region_boxes, ocr_boxes=ocr_boxes, image_size=size)
    with FeatureStore(path) as store:
        plain = read_images(store, np.array([2, 3]))
        images = read_images(store, np.array([2, 3]), boxes=True)
    assert plain.region_boxes is None and plain.ocr_boxes is None
    np.testing.assert_allclose(images.region_boxes[0, 0].numpy(), [0.1, 0.1, 0.6, 0.6], rtol=1e-6)
    np.testing.assert_allclose(images.ocr_boxes[0, 1].numpy(), [0.0, 0.0, 0.1, 0.05], rtol=1e-6)
    assert torch.isnan(images.region_boxes[0, 1:]).all() and torch.isnan(images.ocr_boxes[0, 0]).all()
    assert torch.isnan(images.region_boxes[1]).all() and torch.isnan(images.ocr_boxes[1]).all()
