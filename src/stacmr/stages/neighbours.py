"""`neighbours`: model-free visual neighbours and clusters of every feature store (and of the combined training set),
for neighbour batches and the "does it read?" groups; where the annotations know the true scene groups (the
synthetic world), the groups themselves and how well the clusters agree with them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from stacmr.atomic import atomic_dir
from stacmr.data.annotations import ANNOTATIONS_FILE, read_annotations
from stacmr.data.sources import SOURCES, TRAINSET, store_names
from stacmr.features.neighbours import (
    AGREEMENT_FILE,
    agreement,
    clusters,
    neighbours_file,
    save_neighbours,
    save_true_groups,
    visual_neighbours,
)
from stacmr.features.store import FeatureStore, store_file
from stacmr.params import params_dict
from stacmr.stages.common import log, parser, start


def main(argv: list[str] | None = None) -> None:
    p = parser("neighbours", __doc__)
    p.add_argument("--features", required=True, type=Path, help="directory of per-split feature stores")
    p.add_argument("--trainset", required=True, type=Path, help="the combined training store")
    p.add_argument("--raw", required=True, type=Path, help="release-format sources (annotations: true groups)")
    p.add_argument("--out", required=True, type=Path, help="output folder: one .npz per store")
    args = p.parse_args(argv)
    params = start("neighbours", args)
    nb = params.neighbours
    stores = {name: store_file(args.features, name) for name in store_names()} | {TRAINSET: args.trainset}
    annotations = {s.name: read_annotations(args.raw / s.name / ANNOTATIONS_FILE) for s in SOURCES}
    true_groups, agreements = {}, {}
    with atomic_dir(args.out) as out:
        for name, path in stores.items():
            with FeatureStore(path) as store:
                neighbours, similarity = visual_neighbours(store, nb.k, nb.candidates, nb.block_images)
                cluster = clusters(neighbours, similarity, nb.cluster_size)
                ids = list(store["image_ids"].asstr()[:])
            save_neighbours(neighbours_file(out, name), neighbours, similarity, cluster, params_dict(nb))
            if name == TRAINSET:
                continue
            source, split = name.split("/")
            groups = [annotations[source][split, image_id].group for image_id in ids]
            if all(group is not None for group in groups):
                true_groups[name] = np.array(groups, dtype=np.int64)
                agreements[name] = agreement(neighbours, cluster, true_groups[name])
                log.info("%-12s clusters vs true groups: %s", name, agreements[name])
        save_true_groups(out, true_groups)
        (out / AGREEMENT_FILE).write_text(json.dumps(agreements, indent=2, sort_keys=True) + "\n", encoding="utf-8")
