"""Q-Pert's pieces: box coverage, object weights, the kept components, both projector forms against a plain numpy
eigendecomposition, and the perturbation: the mean over each image's objects, α = 0 and images without objects
unchanged, padded keys in no subspace, bounded chunks, bfloat16 autocast."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from stacmr.models import qpert
from stacmr.models.qpert import QPert, box_area, coverage, kept_components, object_weights, subspace_projector

NAN = [math.nan] * 4


def numpy_projector(c: np.ndarray, energy: float, form: str) -> np.ndarray:
    """The projector of one autocorrelation, in plain numpy: eigenvectors in descending order, each with its largest
    entry positive; V_r V_rᵀ (intended) or the rows of V masked and VᵀSV (released)."""
    values, vectors = np.linalg.eigh(c)
    values, vectors = values[::-1], vectors[:, ::-1]
    vectors = vectors * np.sign(vectors[np.abs(vectors).argmax(axis=0), np.arange(len(c))])
    kept = np.cumsum(values) / values.sum() < energy
    kept[0] = True
    if form == "intended":
        return vectors[:, kept] @ vectors[:, kept].T
    return vectors[kept, :].T @ vectors[kept, :]


def random_autocorrelations(count: int, keys: int, d: int, seed: int = 0) -> np.ndarray:
    """Uncentred autocorrelations of coverage-weighted random keys, (count, d, d) float64."""
    rng = np.random.default_rng(seed)
    k = rng.standard_normal((count, keys, d)) * rng.random((count, keys, 1))
    return k.transpose(0, 2, 1) @ k


# --- boxes and weights ---------------------------------------------------------------------------------------------


def test_coverage_is_the_fraction_of_each_key_inside_the_object():
    objects = torch.tensor([[[0.0, 0.0, 0.5, 0.5], NAN]])
    keys = torch.tensor(
        [[[0.0, 0.0, 0.5, 0.5], [0.25, 0.25, 0.75, 0.75], [0.6, 0.6, 1.0, 1.0], NAN, [0.1, 0.1, 0.1, 0.3]]]
    )
    expected = torch.tensor([[[1.0, 0.25, 0.0, 0.0, 0.0], [0.0] * 5]])  # an empty key box and a missing one weigh 0
    torch.testing.assert_close(coverage(objects, keys), expected)
    torch.testing.assert_close(box_area(objects[0, :1]), torch.tensor([0.25]))


def test_object_weights_follow_the_release_variants():
    areas = torch.tensor([0.1, 0.8])
    expected = {
        "constant": [8.0, 8.0],
        "area": [0.8, 6.4],
        "one_minus_area": [7.2, 1.6],
        "area_minus_half": [-3.2, 2.4],
        "half_minus_area": [3.2, -2.4],
    }
    for weighting, values in expected.items():
        torch.testing.assert_close(object_weights(areas, 8.0, weighting), torch.tensor(values))


def test_kept_components_stay_below_the_energy_and_keep_at_least_one():
    values = torch.tensor([[5.0, 3.0, 1.0, 1.0], [100.0, 1e-3, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    assert kept_components(values, 0.9).tolist() == [
        [True, True, False, False],  # cumulative shares 0.5, 0.8, 0.9, 1.0
        [True, False, False, False],  # the first alone holds nearly everything: still kept
        [True, True, True, False],
    ]
    assert kept_components(values, 0.0).sum(dim=1).tolist() == [1, 1, 1]


# --- the projector -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["intended", "released"])
@pytest.mark.parametrize("energy", [0.99, 0.8, 0.3])
def test_projector_equals_a_plain_numpy_eigendecomposition(form, energy):
    c = random_autocorrelations(12, keys=40, d=16)
    got = subspace_projector(torch.from_numpy(c), energy, form).numpy()
    for one, expected in zip(got, c, strict=True):
        np.testing.assert_allclose(one, numpy_projector(expected, energy, form), atol=1e-9)
    # float32 in batches of (objects, heads), as the model computes it
    batched = subspace_projector(torch.from_numpy(c).float().view(3, 4, 16, 16), energy, form)
    np.testing.assert_allclose(batched.view(12, 16, 16).numpy(), got, atol=2e-4)


@pytest.mark.parametrize("form", ["intended", "released"])
def test_both_forms_are_rank_r_orthogonal_projectors_onto_different_subspaces(form):
    c = torch.from_numpy(random_autocorrelations(20, keys=60, d=16, seed=1))
    p = subspace_projector(c, 0.9, form)
    rank = kept_components(torch.linalg.eigvalsh(c).flip(-1), 0.9).sum(dim=-1).double()
    torch.testing.assert_close(p, p.transpose(-1, -2))
    torch.testing.assert_close(p @ p, p)
    torch.testing.assert_close(p.diagonal(dim1=-2, dim2=-1).sum(-1), rank)
    overlap = (p * subspace_projector(c, 0.9, "intended")).sum(dim=(-1, -2)) / rank
    if form == "intended":
        torch.testing.assert_close(overlap, torch.ones(20, dtype=torch.float64))
    else:
        assert (overlap < 1 - 1e-3).all()  # the release's form is not the leading subspace


def test_eigendecompositions_run_on_one_cpu_thread_and_restore_the_count(monkeypatch):
    threads = []
    eigh = torch.linalg.eigh
    monkeypatch.setattr(torch.linalg, "eigh", lambda a: (threads.append(torch.get_num_threads()), eigh(a))[1])
    before = torch.get_num_threads()
    subspace_projector(torch.from_numpy(random_autocorrelations(2, keys=10, d=4)), 0.9, "intended")
    assert threads == [1] and torch.get_num_threads() == before


def test_released_form_does_not_depend_on_the_eigensolvers_signs(monkeypatch):
    c = torch.from_numpy(random_autocorrelations(6, keys=40, d=8, seed=2))
    expected = subspace_projector(c, 0.9, "released")
    eigh = torch.linalg.eigh
    flips = torch.tensor([1.0, -1.0, -1.0, 1.0, -1.0, 1.0, 1.0, -1.0], dtype=torch.float64)
    monkeypatch.setattr(torch.linalg, "eigh", lambda a: (eigh(a)[0], eigh(a)[1] * flips))
    torch.testing.assert_close(subspace_projector(c, 0.9, "released"), expected)


# --- the perturbation ----------------------------------------------------------------------------------------------


def batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """queries (3, 2, 5, 4), keys (3, 2, 6, 4), key boxes (3, 6, 4) and key mask (3, 6): image 0 has four real keys
    with boxes (and a padded slot with a box), image 1 two real keys without boxes, image 2 six real keys of which
    four have boxes."""
    generator = torch.Generator().manual_seed(seed)
    queries = torch.randn(3, 2, 5, 4, generator=generator)
    keys = torch.randn(3, 2, 6, 4, generator=generator)
    x0y0 = torch.rand(3, 6, 2, generator=generator) * 0.5
    boxes = torch.cat([x0y0, x0y0 + 0.1 + torch.rand(3, 6, 2, generator=generator) * 0.4], dim=-1)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=torch.bool)
    boxes[1] = math.nan
    boxes[2, [1, 4]] = math.nan
    return queries, keys, boxes, mask


def perturbation(boxes, mask, alpha=8.0, weighting="constant", energy=0.9, projector="intended") -> QPert:
    return QPert.of_keys(boxes, mask, alpha, weighting, energy, projector)


@pytest.mark.parametrize("form", ["intended", "released"])
def test_mean_projector_is_the_mean_over_each_images_objects(form):
    queries, keys, boxes, mask = batch()
    pert = perturbation(boxes, mask, weighting="area", projector=form)
    assert pert.objects.tolist() == [[True] * 4 + [False] * 2, [False] * 6, [True, False, True, True, False, True]]
    mean = pert.mean_projector(keys)
    for b in range(3):
        expected = torch.zeros(2, 4, 4)
        objects = pert.objects[b].nonzero()[:, 0]
        for o in objects:
            w = coverage(boxes[b : b + 1, o : o + 1], torch.where(mask[b, :, None], boxes[b], math.nan)[None])[0, 0]
            weighted = keys[b] * w[None, :, None]
            p = subspace_projector(weighted.transpose(-1, -2) @ weighted, 0.9, form)
            expected += 8.0 * box_area(boxes[b, o]) * p
        torch.testing.assert_close(mean[b], expected / max(1, len(objects)))
    assert (mean[1] == 0).all()
    torch.testing.assert_close(pert(queries, keys), queries + queries @ mean)


def test_alpha_zero_and_images_without_objects_leave_the_queries_exactly():
    queries, keys, boxes, mask = batch()
    assert torch.equal(perturbation(boxes, mask, alpha=0.0)(queries, keys), queries)
    moved = perturbation(boxes, mask)(queries, keys)
    assert torch.equal(moved[1], queries[1])  # image 1: no key has a box
    assert not torch.allclose(moved[[0, 2]], queries[[0, 2]])
    no_boxes = torch.full_like(boxes, math.nan)
    assert torch.equal(perturbation(no_boxes, mask)(queries, keys), queries)


@pytest.mark.parametrize("form", ["intended", "released"])
def test_padded_keys_are_in_no_subspace(form):
    queries, keys, boxes, mask = batch()
    pert = perturbation(boxes, mask, projector=form)
    padded = ~mask[:, None, :, None].expand_as(keys)
    garbled_keys = torch.where(padded, 1e3 * torch.randn(keys.shape), keys)
    garbled_boxes = torch.where(mask[..., None], boxes, torch.tensor([0.0, 0.0, 1.0, 1.0]))  # a box covering all
    garbled = perturbation(garbled_boxes, mask, projector=form)
    assert (pert.coverage.masked_select(~mask[:, None, :]) == 0).all()
    torch.testing.assert_close(garbled.mean_projector(garbled_keys), pert.mean_projector(keys))
    torch.testing.assert_close(garbled(queries, garbled_keys), pert(queries, keys))


def test_small_chunks_give_the_same_projectors(monkeypatch):
    _, keys, boxes, mask = batch()
    pert = perturbation(boxes, mask)
    whole = pert.mean_projector(keys)
    monkeypatch.setattr(qpert, "MAX_CHUNK_BYTES", 1)  # one object per chunk
    torch.testing.assert_close(pert.mean_projector(keys), whole)


def test_bfloat16_autocast_perturbs_in_float32():
    queries, keys, boxes, mask = batch()
    pert = perturbation(boxes, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        moved = pert(queries.bfloat16(), keys.bfloat16())
    assert moved.dtype == torch.bfloat16 and torch.isfinite(moved).all()
    torch.testing.assert_close(moved.float(), pert(queries, keys), atol=0.1, rtol=0.05)
