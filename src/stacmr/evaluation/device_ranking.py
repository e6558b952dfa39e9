"""Exact retrieval ranks counted with torch on the device where the scores are: the ranks of `ranking.py` (same tie
rule, same outputs) from one pass over the similarity matrix instead of one per direction.

A `DeviceSimilarity` computes blocks of scores on its device (dense products, views of a held matrix, fine-grained
tiles) and stays there: `device_ranks` copies back to the host only the ranks and the top-k image indices, as int64
numpy arrays, once at the end. Every score is computed once, in exactly one tile, and compared with ground truths
read from the same computation, so the counts are exact whatever the floating-point path:

- images are cut into blocks of consecutive images, captions taken grouped by image (at most `rows` images and
  `budget // rows` captions a block, `rows` such that a block of images with the mean caption count fills the
  budget);
- first each block's tile with its own captions: it holds every ground-truth score of its images (each image's
  best, highest (score, index), for i2t) and of its captions (for t2i), and it is counted;
- then each block's tiles with all other captions, counted against the ground truths already known: each tile adds
  to its images' i2t counts and to its captions' t2i counts (and merges into their top-k).

`max_block_bytes` bounds a tile with its working set (a ground-truth tile holds at least one image and its
captions): the float32 scores plus two boolean masks (6 bytes per element), 16 with the top-k search (the scores'
int32 order bits and the int64 (score, index) keys). The caption embeddings a block function gathers, when captions
are not grouped by image already, come on top, as in the host path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from stacmr.evaluation.ranking import caption_groups, check_top_k

Index = slice | Tensor  # items of a block: a range (`ALL`: every one), or int64 indices on the device (any order)
ALL = slice(None)
_INDEX_BITS = 0xFFFFFFFF  # the low half of a (score, index) key: the index


@dataclass(frozen=True)
class DeviceSimilarity:
    """Scores computed with torch on `device`: `block(rows, cols)` is the (rows, cols) float32 block of images `rows`
    × captions `cols`, on the device. Called with numpy index arrays it is also a host `ranking.Similarity` (the
    block copied back), for the host counting and for host consumers (the text-match fusion)."""

    block: Callable[[Index, Index], Tensor]
    device: torch.device

    @classmethod
    def dense(cls, img_emb: Tensor, cap_emb: Tensor) -> DeviceSimilarity:
        """Cosine blocks of l2-normalised embeddings on their device: img_emb (N, E), cap_emb (M, E), float32."""
        return cls(lambda rows, cols: img_emb[rows] @ cap_emb[cols].T, img_emb.device)

    @classmethod
    def of_matrix(cls, matrix: Tensor) -> DeviceSimilarity:
        """Blocks of a held (N, M) float32 matrix: ranges are views of it, never copies."""
        return cls(lambda rows, cols: matrix[rows][:, cols], matrix.device)

    @property
    def on_gpu(self) -> bool:
        """Not on the CPU: its scores are counted where they are (`metrics.ranks`), never copied to the host."""
        return self.device.type != "cpu"

    def held(self) -> DeviceSimilarity:
        """The whole (N, M) matrix computed once on the device, then read by blocks."""
        return DeviceSimilarity.of_matrix(self.block(ALL, ALL))

    @torch.inference_mode()
    def __call__(self, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
        rows_t, cols_t = (torch.as_tensor(items, dtype=torch.int64, device=self.device) for items in (rows, cols))
        return self.block(rows_t, cols_t).cpu().numpy()


def _order_keys(scores: Tensor, index: Tensor) -> Tensor:
    """int64 keys in the rank order of (score, index) pairs, float32 scores: the higher score, then the higher index,
    has the larger key. The score's bits, made monotone as a signed int32, above the index (< 2^32)."""
    bits = (scores + 0.0).view(torch.int32)  # + 0.0: -0.0 becomes +0.0, an equal score gets equal bits
    # bits >> 31: all ones for a negative float, whose magnitude bits are then reversed: as int32, the floats' order
    bits ^= (bits >> 31).bitwise_and_(0x7FFFFFFF)
    keys = bits.to(torch.int64)
    keys <<= 32
    keys |= index
    return keys


def _beaten(s: Tensor, g: Tensor, gt: Tensor, index: Tensor, dim: int) -> Tensor:
    """Along `dim`, how many entries of the tile `s` rank before the ground truth of score `g` and index `gt`: higher
    scores, and equal ones at a higher `index` (the tie rule of `ranking.py`)."""
    tied = s == g
    tied &= index > gt
    # int32 counts (a tile is shorter than 2^31 along `dim`): a boolean sum into int64 is far slower on a CPU
    return (s > g).sum(dim, dtype=torch.int32) + tied.sum(dim, dtype=torch.int32)


def _image_blocks(starts: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Consecutive images [a, b): at most `rows` images with at most `budget // rows` captions (an image with more
    is a block of its own), `rows` such that a block of images with the mean caption count fills the budget."""
    n_images, n_captions = len(starts) - 1, int(starts[-1])
    rows = max(1, math.isqrt(budget * n_images // max(n_captions, 1)))
    blocks, a = [], 0
    while a < n_images:
        fits = int(np.searchsorted(starts, starts[a] + budget // rows, side="right")) - 1
        b = max(a + 1, min(a + rows, fits))
        blocks.append((a, b))
        a = b
    return blocks


def _chunks(start: int, stop: int, width: int) -> Iterator[tuple[int, int]]:
    for a in range(start, stop, width):
        yield a, min(a + width, stop)


@torch.inference_mode()
def device_ranks(
    similarity: DeviceSimilarity,
    n_images: int,
    caption_image: np.ndarray,
    max_block_bytes: int,
    t2i_top: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(i2t ranks (n_images,), t2i ranks (n_captions,)), 0-based, counted on `similarity.device`; `t2i_top`
    (n_captions, k), when given, receives each caption's k best images, best first: `ranking.py`'s outputs."""
    order, starts = caption_groups(caption_image, n_images)
    check_top_k(t2i_top, n_images)
    k = 0 if t2i_top is None else t2i_top.shape[1]
    n_captions, device = len(caption_image), similarity.device
    budget = max(1, max_block_bytes // (16 if k else 6))
    # captions grouped by image: position p holds caption order[p]
    caption = torch.from_numpy(order).to(device)
    owner = torch.from_numpy(caption_image[order].astype(np.int64)).to(device)
    grouped = np.array_equal(order, np.arange(n_captions))
    images = torch.arange(n_images, device=device)
    g_image = torch.empty(n_images, device=device)  # each image's best ground-truth score
    best = torch.empty(n_images, dtype=torch.int64, device=device)  # and that caption
    g_caption = torch.empty(n_captions, device=device)  # each caption's ground-truth score, by position
    i2t = torch.zeros(n_images, dtype=torch.int64, device=device)
    t2i = torch.zeros(n_captions, dtype=torch.int64, device=device)  # by position
    low = torch.iinfo(torch.int64).min
    top = torch.full((n_captions, k), low, dtype=torch.int64, device=device)  # (score, image) keys, by position

    def tile(a: int, b: int, p: int, q: int) -> Tensor:
        return similarity.block(slice(a, b), slice(p, q) if grouped else caption[p:q])

    def count(s: Tensor, a: int, b: int, p: int, q: int) -> None:
        """Add the tile `s` of images [a, b) × caption positions [p, q) to the counts (its ground truths known)."""
        i2t[a:b] += _beaten(s, g_image[a:b, None], best[a:b, None], caption[None, p:q], dim=1)
        t2i[p:q] += _beaten(s, g_caption[None, p:q], owner[None, p:q], images[a:b, None], dim=0)
        if k:
            tile_top = _order_keys(s, images[a:b, None]).topk(min(k, b - a), dim=0).values.T
            top[p:q] = torch.cat([top[p:q], tile_top], dim=1).topk(k, dim=1).values

    blocks = _image_blocks(starts, budget)
    for a, b in blocks:  # the tiles of the ground truths first
        p, q = int(starts[a]), int(starts[b])
        s = tile(a, b, p, q)
        rows = owner[p:q] - a  # each caption's image, a row of the tile
        g = s[rows, torch.arange(q - p, device=device)]
        g_caption[p:q] = g
        g_image[a:b] = torch.full((b - a,), -math.inf, device=device).scatter_reduce(0, rows, g, "amax")
        keys = torch.full((b - a,), low, dtype=torch.int64, device=device)
        best[a:b] = keys.scatter_reduce(0, rows, _order_keys(g, caption[p:q]), "amax") & _INDEX_BITS
        count(s, a, b, p, q)
    for a, b in blocks:
        width = max(1, budget // (b - a))
        for p, q in (*_chunks(0, int(starts[a]), width), *_chunks(int(starts[b]), n_captions, width)):
            count(tile(a, b, p, q), a, b, p, q)
    t2i_out = np.empty(n_captions, dtype=np.int64)
    t2i_out[order] = t2i.cpu().numpy()
    if t2i_top is not None:
        t2i_top[order] = (top & _INDEX_BITS).cpu().numpy()
    return i2t.cpu().numpy(), t2i_out
