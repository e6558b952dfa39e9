"""The repo's own params.yaml, shrunk to a tiny synthetic world (lightning-hydra style)."""

from __future__ import annotations

import copy


def shrink(raw: dict) -> dict:
    """The repo's params with sizes small enough for a unit test (a second or two per stage)."""
    tiny = copy.deepcopy(raw)
    tiny["synthetic"].update(
        ctc_images={"train": 60, "val": 15, "test": 45, "dev": 12},
        f30k_images=40,
        textcaps_images=30,
        regions=6,
        region_dim=16,
    )
    tiny["features"]["fasttext"].update(dim=32, epoch=2, lr=0.005, ws=2, bucket=20000)
    tiny["trainset"]["chunk_images"] = 7
    tiny["train"].update(epochs=2, batch_size=16, lr_decay_every=1)
    small = {"embed_dim": 16, "word_dim": 8, "gcn_layers": 1, "caption_hidden": 16, "caption_word_dim": 8}
    for config in tiny["models"].values():
        config.update({key: value for key, value in small.items() if key in config})
        config.update({key: 1 for key in ("text_gcn_layers", "weldon_k") if key in config})
    return tiny
