"""Execute the report notebooks with papermill and export each to one self-contained HTML page.

Reads `<notebooks>/*.ipynb` (each with a `parameters`-tagged cell); writes `<out>/<name>.ipynb` (the executed copy)
and `<out>/<name>.html` (code hidden, images embedded: the page a reviewer opens), the whole folder atomically.
The kernel is the `python3` kernel of the running environment. Jupyter's and papermill's chatter (progress bars,
per-cell logs, platformdirs and debugger warnings) is silenced: a failing cell is reported as one error instead.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from stacmr.atomic import atomic_dir
from stacmr.errors import StacmrError

KERNEL = "python3"
_QUIET_ENV = {
    "MPLBACKEND": "Agg",  # figures are files; no display in the kernel
    "JUPYTER_PLATFORM_DIRS": "1",  # jupyter_core's deprecation warning about its config folders
    "PYDEVD_DISABLE_FILE_VALIDATION": "1",  # ipykernel's debugger warning about frozen modules
    # library deprecations, and tqdm's notice that the ipywidgets progress bar is not installed (it is not needed)
    "PYTHONWARNINGS": "ignore::DeprecationWarning,ignore:IProgress not found",
}


@contextlib.contextmanager
def _kernel_environment() -> Iterator[None]:
    """`_QUIET_ENV` for the kernels started inside, the caller's environment restored after."""
    saved = {key: os.environ.get(key) for key in _QUIET_ENV}
    os.environ.update(_QUIET_ENV)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _drop_run_details(executed: Path) -> None:
    """Remove what changes on every run from an executed notebook: papermill's and Jupyter's timings, the
    input/output paths (the output lies in a temporary folder) and the parameters cell's random id, so that the same
    inputs give the same bytes."""
    import nbformat

    nb = nbformat.read(executed, as_version=4)
    papermill_meta = nb.metadata.get("papermill", {})
    nb.metadata["papermill"] = {"parameters": papermill_meta.get("parameters", {})}
    for cell in nb.cells:
        cell.metadata.pop("execution", None)
        cell.metadata.pop("papermill", None)
        if "injected-parameters" in cell.metadata.get("tags", []):
            cell.id = "injected-parameters"  # papermill gives it a random id
    nbformat.write(nb, executed)


def _export_html(executed: Path, html: Path) -> None:
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(exclude_input=True, exclude_input_prompt=True, exclude_output_prompt=True)
    # nbconvert warns that the figures have no alternative text (it fills in a placeholder); nothing to act on
    exporter.log = logging.getLogger("stacmr.nbconvert")
    exporter.log.setLevel(logging.ERROR)
    body, _ = exporter.from_notebook_node(nbformat.read(executed, as_version=4))
    html.write_text(body, encoding="utf-8")


def run_notebooks(notebooks_dir: Path, out_dir: Path, parameters: dict[str, Any]) -> list[Path]:
    """Execute every notebook of `notebooks_dir` with `parameters`; returns the HTML pages written."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    notebooks = sorted(Path(notebooks_dir).glob("*.ipynb"))
    if not notebooks:
        raise StacmrError(f"{notebooks_dir}: no notebooks (*.ipynb) to run")
    logging.getLogger("papermill").setLevel(logging.WARNING)
    pages = []
    with _kernel_environment(), atomic_dir(out_dir) as tmp:
        for notebook in notebooks:
            executed = tmp / notebook.name
            try:
                papermill.execute_notebook(
                    notebook,
                    executed,
                    parameters=parameters,
                    kernel_name=KERNEL,
                    progress_bar=False,
                    log_output=False,
                    extra_arguments=["--IPKernelApp.log_level=ERROR"],
                )
            except PapermillExecutionError as exc:
                raise StacmrError(f"{notebook}: cell {exc.exec_count} failed: {exc.ename}: {exc.evalue}") from None
            _drop_run_details(executed)
            _export_html(executed, executed.with_suffix(".html"))
            pages.append(Path(out_dir) / executed.with_suffix(".html").name)
    return pages
