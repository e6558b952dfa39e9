"""`trainset`: concatenate the training stores named in `trainset.sources` into one store (`--out`)."""

from __future__ import annotations

from pathlib import Path

from stacmr.features.store import FeatureStore, store_file
from stacmr.features.trainset import build_trainset
from stacmr.features.vocab import Vocabulary
from stacmr.params import params_dict
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("trainset", __doc__)
    p.add_argument("--features", required=True, type=Path, help="directory of feature stores written by `features`")
    p.add_argument("--out", required=True, type=Path, help="the combined training store (.h5)")
    p.add_argument("--vocab", required=True, type=Path, help="the caption vocabulary built from it (.json)")
    args = p.parse_args(argv)
    params = start("trainset", args)
    stores = [store_file(args.features, name) for name in params.trainset.sources]
    build_trainset(stores, args.out, params.trainset.chunk_images, {"trainset": params_dict(params.trainset)})
    with FeatureStore(args.out) as train:
        vocab = Vocabulary.build(train.iter_captions(params.trainset.chunk_images), params.trainset.vocab_min_count)
    vocab.save(args.vocab)
    log.info("wrote %s from %s; vocabulary of %d words", args.out, ", ".join(params.trainset.sources), len(vocab))
