"""The embedded synthetic CTC world (`data.source: synthetic`): see `world.py` for what it builds and why."""

from stacmr.data.synthetic.world import generate_world

__all__ = ["generate_world"]
