"""The checkout a command works in: its root folder and its git state (one place that runs git)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from stacmr.errors import StacmrError


class GitError(StacmrError):
    """git is missing, or a git command failed (its stderr is the message)."""


def repo_root() -> Path:
    """The project root: `$DVC_ROOT` (set by DVC in every stage), else the nearest parent of the cwd holding
    `dvc.yaml` or `.git`, else the cwd."""
    if root := os.environ.get("DVC_ROOT"):
        return Path(root).resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if (folder / "dvc.yaml").exists() or (folder / ".git").exists():
            return folder
    return cwd


def git(root: Path, *args: str, stdin: str | None = None) -> str:
    """The stdout of `git -C root <args>` (given `stdin` on its input); `GitError` when git is missing or fails."""
    try:
        done = subprocess.run(["git", "-C", str(root), *args], input=stdin, capture_output=True, text=True, check=True)
    except FileNotFoundError:
        raise GitError("git is not installed") from None
    except subprocess.CalledProcessError as exc:
        raise GitError(f"git {' '.join(args)}: {exc.stderr.strip() or exc}") from None
    return done.stdout
