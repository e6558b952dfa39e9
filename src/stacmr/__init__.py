"""stacmr: the reproducible artifact of scene-text aware cross-modal retrieval (StacMR, WACV 2021)."""

__version__ = "0.1.0"
