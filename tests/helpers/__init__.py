"""Helpers shared by several test modules (a test module imports from here, never from another test module)."""

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
