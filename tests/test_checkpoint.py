"""Checkpoints: the same state gives the same bytes whatever the file is called (issue #14), and reads back."""

from __future__ import annotations

import torch

from stacmr.training.checkpoint import load_checkpoint, save_checkpoint


def test_same_state_same_bytes_under_any_name(tmp_path):
    state = {"model": {"w": torch.arange(6.0).reshape(2, 3)}, "epoch": 3, "history": [{"epoch": 1, "loss": 0.5}]}
    save_checkpoint(tmp_path / "a" / "best.pt", state)
    save_checkpoint(tmp_path / "b" / "other_name.pt", state)
    assert (tmp_path / "a" / "best.pt").read_bytes() == (tmp_path / "b" / "other_name.pt").read_bytes()
    loaded = load_checkpoint(tmp_path / "a" / "best.pt")
    assert torch.equal(loaded["model"]["w"], state["model"]["w"]) and loaded["history"] == state["history"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["best.pt"]
