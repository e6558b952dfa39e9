"""The OCR-noise sweep table from `dvc.api.exp_show` rows and each experiment's evaluate metrics, and its figure."""

from __future__ import annotations

import pytest

from stacmr.reporting.sweep import COLUMNS, ocr_noise_figure, read_sweep, sweep_rows

# per experiment row: (name, rev, noise, rsum, within-group); the metrics files hold rsum + 1 on dev
RUNS = [
    ("workspace", "workspace", 0.06, 400.0, 0.8),
    ("main", "a1b2c3d", 0.06, 401.0, 0.81),
    ("ocr-0", "e4f5a6b", 0.0, 410.0, 0.9),
    ("ocr-0.15", "c7d8e9f", 0.15, 380.0, 0.6),
    ("ocr-0.3", "f0e1d2c", 0.3, 1.0, 0.1),
]


def _metrics(rev: str, ablation: str, split: str) -> dict | None:
    """What each run's `reports/metrics/<ablation>/<split>.json` holds; vsrn_all was not evaluated in ocr-0."""
    if ablation == "vsrn_all" and rev == "e4f5a6b":
        return None
    _, _, _, rsum, within = next(run for run in RUNS if run[1] == rev)
    reading = {"true": {"within_group": within, "ocr_swap": within / 2}, "visual": {"within_group": 0.0}}
    return {"rsum": rsum + (split == "dev"), "i2t_r1": 1.0, "reading": reading}


def test_sweep_rows_take_every_noise_level_once_and_only_the_asked_ablations(tmp_path):
    experiments = [
        {"Experiment": None if name == "workspace" else name, "rev": rev, "params.yaml:synthetic.ocr_char_error": noise}
        for name, rev, noise, _, _ in RUNS
    ]
    experiments[-1]["State"] = "Running"  # its files are its baseline's until it ends
    experiments.append({"Experiment": "queued", "rev": "0a0b0c0", "params.yaml:synthetic.ocr_char_error": None})
    read = []
    table = sweep_rows(
        experiments, ("chan_st_ws_nb", "vsrn_all"), ("dev", "test"), lambda *key: read.append(key) or _metrics(*key)
    )
    assert list(table.columns) == list(COLUMNS)
    assert {rev for rev, _, _ in read} == {"workspace", "a1b2c3d", "e4f5a6b", "c7d8e9f"}
    assert len(table) == 2 * 2 * 3 - 2  # ablations × splits × noise levels, less vsrn_all at 0
    at = table[(table.ablation == "chan_st_ws_nb") & (table.split == "dev")].set_index("ocr_char_error")
    assert at.loc[0.06, "experiment"] == "main" and at.loc[0.06, "rsum"] == 402.0  # a named run over the workspace
    assert at.loc[0.15, "within_group"] == 0.6 and at.loc[0.15, "ocr_swap"] == 0.3
    assert 0.0 not in set(table[table.ablation == "vsrn_all"].ocr_char_error)
    path = tmp_path / "ocr_noise.csv"
    path.write_text(table.to_csv(index=False))
    assert read_sweep(path).shape == table.shape
    assert read_sweep(tmp_path / "absent.csv") is None
    fig = ocr_noise_figure(table, synthetic=True)
    assert len(fig.axes[0].lines) == 4 and "synthetic" in fig._suptitle.get_text()


def test_a_foreign_csv_is_refused(tmp_path):
    path = tmp_path / "ocr_noise.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(Exception, match="not an OCR-noise sweep table"):
        read_sweep(path)
