"""Q-Pert (Sogi, Shibata, Terao, ECCV 2024, "Object-Aware Query Perturbation for Cross-Modal Image-Text
Retrieval"): a training-free perturbation of a learned-query encoder's cross-attention queries towards the key
subspace of each object in the image.

For each image, each object, each cross-attention layer and head (head dim d): the object's coverage weight of each
key w (`coverage`: the fraction of the key's box inside the object's box; 0 for a key without a box or a padded
one); the weighted keys K̃ = diag(w)·K (n_keys × d); their *uncentred* autocorrelation C = K̃ᵀK̃ (d × d); its
eigendecomposition, the leading components kept while their cumulative eigenvalue share stays below `energy` (at
least one: `kept_components`); the projector P onto them (`subspace_projector`), scaled by the object's weight
(`object_weights`: α, or α times a function of the box's area). Each query q becomes q′ = q + q·P̄, P̄ the mean of
the scaled projectors over the image's objects, NaN products set to 0 (`QPert`); an image without objects keeps
its queries, and α = 0 leaves every query exactly as it was. Keys and values are unchanged.

Two projector forms (`Projector`): `intended`, P = V_r V_rᵀ onto the r leading eigenvectors (the paper's); and
`released`, the release's code: eigenvectors as columns in descending order, the kept-components mask applied to
the *rows* of V and P = VᵀSV (S the 0/1 diagonal of kept components), also a rank-r orthogonal projector but not
onto the leading eigenvectors. A number computed with Q-Pert names the form it used. The released form is not a
function of the subspace: it changes with the signs the eigensolver gives its eigenvectors (the release took
cuSOLVER's), so here each eigenvector's largest entry is made positive, the same on every device and library; and
where C is rank-deficient (an object covering fewer keys than d) it depends on the basis the solver picks for the
null space, which nothing fixes (`intended` depends on neither).

Everything computes in float32 outside autocast (eigh has no bfloat16), on the keys' device, over the real objects
only, in chunks of at most `MAX_CHUNK_BYTES` of working memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

Projector = Literal["intended", "released"]
# An object's scale of its projector, with `area` its box's fraction of the image: α (the release's default), α·area,
# α·(1 − area), α·(area − 0.5), α·(0.5 − area) (the release's AreaWeightType variants)
Weighting = Literal["constant", "area", "one_minus_area", "area_minus_half", "half_minus_area"]

MAX_CHUNK_BYTES = 64 << 20  # working memory of one chunk of objects' autocorrelations and eigenvectors


def box_area(boxes: Tensor) -> Tensor:
    """Areas of boxes (..., 4) as (x0, y0, x1, y1) fractions of the image → (...); NaN for a NaN box."""
    return (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])


def coverage(objects: Tensor, keys: Tensor) -> Tensor:
    """Each object's coverage weight of each key: area(object ∩ key) / area(key), the fraction of the key's box
    inside the object's box (the release's fraction of each patch covered by the box). objects (B, O, 4), keys
    (B, N, 4) → (B, O, N); 0 where a key or an object has no box (NaN) or the key's box is empty."""
    lo = torch.maximum(objects[:, :, None, :2], keys[:, None, :, :2])
    hi = torch.minimum(objects[:, :, None, 2:], keys[:, None, :, 2:])
    inter = (hi - lo).clamp(min=0).prod(dim=-1)
    area = box_area(keys)[:, None, :]
    return torch.nan_to_num(torch.where(area > 0, inter / area, 0), nan=0.0)


def object_weights(areas: Tensor, alpha: float, weighting: Weighting) -> Tensor:
    """The scale of each object's projector from its box's area fraction: `Weighting`."""
    if weighting == "constant":
        return torch.full_like(areas, alpha)
    shift = {"area": areas, "one_minus_area": 1 - areas, "area_minus_half": areas - 0.5, "half_minus_area": 0.5 - areas}
    return alpha * shift[weighting]


def kept_components(eigenvalues: Tensor, energy: float) -> Tensor:
    """Which components a subspace keeps, eigenvalues (..., d) in descending order → bool (..., d): the leading ones
    whose cumulative share of the eigenvalues' sum stays below `energy`, and always the first."""
    kept = eigenvalues.cumsum(dim=-1) / eigenvalues.sum(dim=-1, keepdim=True) < energy
    kept[..., 0] = True
    return kept


def subspace_projector(autocorrelation: Tensor, energy: float, form: Projector) -> Tensor:
    """The projector (..., d, d) of symmetric autocorrelations (..., d, d): onto the leading eigenvectors kept by
    `energy` (`intended`, V_r V_rᵀ), or the release's row-masked VᵀSV (`released`); see the module docstring."""
    values, vectors = _eigh(autocorrelation)  # ascending, eigenvectors as columns
    values, vectors = values.flip(-1), vectors.flip(-1)
    kept = kept_components(values, energy).to(vectors.dtype)
    if form == "intended":
        return (vectors * kept[..., None, :]) @ vectors.transpose(-1, -2)
    # VᵀSV changes with the eigenvectors' signs (a flip D gives D·P·D): each is fixed with its largest entry positive
    largest = vectors.gather(-2, vectors.abs().argmax(dim=-2, keepdim=True))
    vectors = vectors * largest.sign()
    masked = vectors * kept[..., :, None]  # the release zeroes the rows of V, not its columns
    return masked.transpose(-1, -2) @ masked


def _eigh(matrices: Tensor) -> tuple[Tensor, Tensor]:
    """`torch.linalg.eigh`, on the CPU on one thread: LAPACK's threads cost many small matrices more than they give
    (5,000 autocorrelations 32 × 32: 0.35 s on one thread, 2.6 s on two of a busy two-core machine, up to 90 s)."""
    if matrices.device.type != "cpu":
        return torch.linalg.eigh(matrices)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return torch.linalg.eigh(matrices)
    finally:
        torch.set_num_threads(threads)


@dataclass(frozen=True)
class QPert:
    """Q-Pert for one batch of B images whose keys are N slots with boxes: the objects (keys with a box of positive
    area; `of_keys`), their coverage of the keys and their scales, and the subspace settings. Called on a
    cross-attention layer's per-head queries and keys, it returns the perturbed queries."""

    coverage: Tensor  # (B, O, N) object o's coverage weight of key n (objects are key slots: O = N)
    scale: Tensor  # (B, O) float32 the scale of object o's projector (`object_weights`)
    objects: Tensor  # (B, O) bool, True = a real object
    energy: float
    projector: Projector

    @classmethod
    def of_keys(
        cls,
        boxes: Tensor,
        mask: Tensor,
        alpha: float,
        weighting: Weighting,
        energy: float,
        projector: Projector,
    ) -> QPert:
        """The objects of images whose keys have boxes (B, N, 4) (NaN rows: no box) and mask (B, N) (True = a real
        key): every real key with a box of positive area is an object, and a padded key is covered by none."""
        boxes = torch.where(mask[..., None], boxes.float(), float("nan"))
        areas = box_area(boxes)
        objects = areas > 0  # False for NaN
        weights = coverage(boxes, boxes)
        scale = torch.where(objects, object_weights(torch.nan_to_num(areas), alpha, weighting), 0)
        return cls(weights, scale, objects, energy, projector)

    def mean_projector(self, keys: Tensor) -> Tensor:
        """P̄ (B, H, d, d) float32: the mean over each image's objects of its scaled projectors, from one layer's
        keys (B, H, N, d); zero for an image without objects."""
        b, heads, n, d = keys.shape
        keys = keys.float()
        total = torch.zeros(b, heads, d, d, device=keys.device)
        image, obj = self.objects.nonzero(as_tuple=True)
        chunk = max(1, MAX_CHUNK_BYTES // (4 * heads * (2 * n * d + 3 * d * d)))
        for start in range(0, len(image), chunk):
            img, o = image[start : start + chunk], obj[start : start + chunk]
            weighted = keys[img] * self.coverage[img, o][:, None, :, None]  # K̃ = diag(w)·K per head
            autocorrelation = weighted.transpose(-1, -2) @ weighted
            projector = subspace_projector(autocorrelation, self.energy, self.projector)
            total.index_add_(0, img, projector * self.scale[img, o][:, None, None, None])
        count = self.objects.sum(dim=1).clamp(min=1).float()
        return total / count[:, None, None, None]

    def __call__(self, queries: Tensor, keys: Tensor) -> Tensor:
        """q′ = q + q·P̄ for queries (B, H, M, d) and keys (B, H, N, d), in the queries' dtype."""
        with torch.autocast(queries.device.type, enabled=False):
            shift = queries.float() @ self.mean_projector(keys)
            shift = shift.masked_fill(shift.isnan(), 0)
        return queries + shift.to(queries.dtype)
