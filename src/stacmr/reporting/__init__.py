"""The paper artifact: what the `report` stage's notebook and `stacmr verify` call to make every table, figure and
verdict.

results.py (evaluated metrics, ranks and their provenance), labels.py (display names), comparison.py (paired tests
between two ablations), claims.py (the paper's claims checked against the results), render.py (a table as HTML,
Markdown, LaTeX and CSV), tables.py (main and ablation tables), history.py (training curves from MLflow or the DVC
plots), qualitative.py (top images of caption queries), figures.py (seaborn figures), notebooks.py (papermill
execution and the HTML export).
"""
