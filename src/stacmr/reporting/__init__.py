"""The paper artifact: what the `report` stage's notebook, `stacmr verify` and `stacmr compare` call to make every
table, figure and verdict.

results.py (evaluated metrics, ranks and their provenance), seeds.py (every training run of an ablation: the seed
replicates, mean ± sd), labels.py (display names), comparison.py (paired and seed-aware tests between two
ablations), claims.py (the paper's claims checked against the results), verdicts.py (the verdicts for a reader: the
summary, the directions, the appendix, the terminal), rerun.py (a rerun judged against committed metrics),
render.py (a table as HTML, Markdown, LaTeX and CSV), tables.py (main and ablation tables), scene_text.py (headroom
and "does it read?" tables), summary.py (the one DVC metric), sweep.py (the OCR-noise sweep), history.py (training
curves from the DVC history CSVs), qualitative.py (top images of caption queries), figures.py (seaborn figures),
notebooks.py (papermill execution and the HTML export).
"""
