"""The OCR-noise sweep table from `dvc.api.exp_show` rows, and its figure."""

from __future__ import annotations

import pytest

from stacmr.reporting.sweep import COLUMNS, ocr_noise_figure, read_sweep, sweep_rows


def _exp(name: str, noise: float | None, rsum: float, within: float) -> dict:
    row = {"Experiment": name, "rev": name[:7], "params.yaml:synthetic.ocr_char_error": noise}
    for ablation in ("chan_st_ws_nb", "chan_char_st_nb", "vsrn_all"):
        for split in ("dev", "test"):
            prefix = f"reports/metrics/{ablation}/{split}.json:"
            row[prefix + "rsum"] = rsum + (split == "dev")
            row[prefix + "reading.true.within_group"] = within
            row[prefix + "reading.true.ocr_swap"] = within / 2
            row[prefix + "i2t_r1"] = 1.0
    return row


def test_sweep_rows_take_every_noise_level_once_and_only_the_asked_ablations(tmp_path):
    rows = [
        _exp("workspace", 0.06, 400.0, 0.8),
        _exp("main", 0.06, 401.0, 0.81),
        _exp("ocr-0", 0.0, 410.0, 0.9),
        _exp("ocr-0.15", 0.15, 380.0, 0.6),
        {"Experiment": "queued", "params.yaml:synthetic.ocr_char_error": None},
        {**_exp("ocr-0.3", 0.3, 1.0, 0.1), "State": "Running"},  # shows its baseline's metrics until it ends
    ]
    table = sweep_rows(rows, ("chan_st_ws_nb", "chan_char_st_nb"))
    assert list(table.columns) == list(COLUMNS)
    assert len(table) == 2 * 2 * 3  # ablations × splits × noise levels
    at = table[(table.ablation == "chan_st_ws_nb") & (table.split == "dev")].set_index("ocr_char_error")
    assert at.loc[0.06, "experiment"] == "main" and at.loc[0.06, "rsum"] == 402.0  # a named run over the workspace
    assert at.loc[0.15, "within_group"] == 0.6 and at.loc[0.15, "ocr_swap"] == 0.3
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
