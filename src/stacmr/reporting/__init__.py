"""The paper artifact: what the `report` stage's notebooks call to make every table, figure and the claims check.

results.py (evaluated metrics, ranks and their provenance), labels.py (display names), claims.py (the paper's
claims checked against the results), tables.py (main and ablation tables: Markdown, LaTeX, CSV), history.py (training
curves from MLflow or the DVC plots), qualitative.py (top images of caption queries), figures.py (seaborn figures),
notebooks.py (papermill execution and the HTML export).
"""
