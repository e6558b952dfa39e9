"""The paper artifact: what the `report` stage's notebook, `stacmr verify` and `stacmr compare` call to make every
table, figure and verdict.

results.py (evaluated metrics, ranks and their provenance), seeds.py (training-seed replicates), comparison.py (paired
and seed-aware tests between two ablations), claims.py (the paper's claims checked against the results), verdicts.py
(the verdicts as a reader sees them), rerun.py (a rerun judged against a git revision), summary.py (the headline DVC
metric), render.py (a table as HTML, Markdown, LaTeX and CSV), tables.py (main and ablation tables), scene_text.py (does
a family read the text), history.py (training curves from the DVC history CSVs), qualitative.py (top images of caption
queries), figures.py (seaborn figures), sweep.py (the OCR-noise sweep), notebooks.py (papermill execution and the HTML
export).
"""
