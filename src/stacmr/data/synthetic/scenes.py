"""Scenes and their region features: latent object, attribute and place concepts plus Gaussian noise.

A scene is a place and 1..max_objects (object, attribute) pairs, one of which may carry scene text. Every concept is
a random unit vector in R^D (drawn once per world). An object gets 1-3 regions, each `object + w·attribute + noise`;
the remaining slots show the place (`place + noise`); slots are shuffled, as detector regions come in no fixed order.
`region_slots` says which slot shows what (`layout.py` places their boxes).
The noise vector has expected norm `region_noise` (concepts have norm 1), so the knob reads as a noise-to-signal ratio.
Scene text leaves no trace in the regions: only OCR tells two images of one group apart.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stacmr.data.synthetic.lexicon import ATTRIBUTES, OBJECTS, PLACES, TEXT_CARRIERS

_OBJECT_NAMES = tuple(OBJECTS)


@dataclass(frozen=True)
class Scene:
    place: str
    objects: tuple[tuple[str, str], ...]  # (object, attribute) pairs
    carrier: int | None  # index into `objects` of the object that carries the scene text, if any


@dataclass(frozen=True)
class ConceptSpace:
    objects: dict[str, np.ndarray]  # name → (D,) unit vector
    attributes: dict[str, np.ndarray]
    places: dict[str, np.ndarray]

    @classmethod
    def draw(cls, rng: np.random.Generator, dim: int) -> ConceptSpace:
        def unit_vectors(names: tuple[str, ...]) -> dict[str, np.ndarray]:
            vecs = rng.standard_normal((len(names), dim))
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
            return dict(zip(names, vecs, strict=True))

        return cls(unit_vectors(_OBJECT_NAMES), unit_vectors(ATTRIBUTES), unit_vectors(PLACES))


def draw_scene(rng: np.random.Generator, max_objects: int, with_text: bool) -> Scene:
    """A random scene; with `with_text`, its first object is a text carrier (a sign, a bus, a shirt, ...)."""
    n = int(rng.integers(1, max_objects + 1))
    names: list[str] = []
    if with_text:
        names.append(TEXT_CARRIERS[rng.integers(len(TEXT_CARRIERS))])
    while len(names) < n:
        name = _OBJECT_NAMES[rng.integers(len(_OBJECT_NAMES))]
        if name not in names:
            names.append(name)
    objects = tuple((name, ATTRIBUTES[rng.integers(len(ATTRIBUTES))]) for name in names)
    return Scene(place=PLACES[rng.integers(len(PLACES))], objects=objects, carrier=0 if with_text else None)


def region_slots(scene: Scene, rng: np.random.Generator, regions: int) -> np.ndarray:
    """What each of the `regions` slots of one image of `scene` shows, in slot order: (regions, 2) int rows
    (object, part), object an index into `scene.objects` or -1 for the place, part its k-th slot (0: the first)."""
    owners: list[tuple[int, int]] = []
    for index in range(len(scene.objects)):
        owners.extend((index, part) for part in range(int(rng.integers(1, 4))))
    owners = owners[:regions]
    owners.extend((-1, part) for part in range(regions - len(owners)))
    return np.array(owners)[rng.permutation(regions)]


def render_regions(
    scene: Scene,
    space: ConceptSpace,
    rng: np.random.Generator,
    regions: int,
    noise: float,
    attribute_weight: float,
    slots: np.ndarray | None = None,
) -> np.ndarray:
    """Region features of one image of `scene`: (regions, D) float32. `slots`: its `region_slots`, when the caller
    drew them (to place their boxes); None: drawn here."""
    dim = space.places[scene.place].shape[0]
    slots = region_slots(scene, rng, regions) if slots is None else slots
    centres = [space.objects[name] + attribute_weight * space.attributes[attr] for name, attr in scene.objects]
    clean = np.stack([centres[owner] if owner >= 0 else space.places[scene.place] for owner, _ in slots])
    return (clean + rng.standard_normal((regions, dim)) * (noise / np.sqrt(dim))).astype(np.float32)
