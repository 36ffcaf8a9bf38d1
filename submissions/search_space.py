"""Search spaces in AlgoPerf's JSON form, validated, and sampled quasi-randomly.

Two forms are accepted, as in AlgoPerf's ``tuning_search_space.json``:

- a mapping ``{name: {"min": a, "max": b, "scaling": "log" | "linear"}}`` or
  ``{name: {"feasible_points": [...]}}``, sampled by a scrambled Halton sequence
  (``scipy.stats.qmc``): ``log`` gives ``min * (max / min) ** u``, ``linear``
  ``min + u * (max - min)``, a discrete dimension ``feasible_points[floor(u * len)]``;
- a list of fixed points ``[{name: value, ...}, ...]``, used in order.

AlgoPerf draws one fixed set of points and gives every study the same points in a
shuffled order. Here each study draws its own points from its own seed, so studies
are independent repetitions of the whole tuning procedure and their spread measures
tuning luck as well as timing noise.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any

from optarena.errors import UserError

Point = dict[str, Any]
"""One point of a search space: hyperparameter name -> value."""


class Scaling(StrEnum):
    """How a continuous dimension maps the unit interval onto ``[min, max]``."""

    LOG = "log"
    LINEAR = "linear"


class SearchSpaceError(UserError, ValueError):
    """A search space that does not follow the accepted forms."""


@dataclasses.dataclass(frozen=True)
class Range:
    """A continuous dimension ``[low, high]`` on a log or linear scale."""

    name: str
    low: float
    high: float
    scaling: Scaling

    def value(self, u: float) -> float:
        if self.scaling is Scaling.LOG:
            return float(self.low * math.exp(u * math.log(self.high / self.low)))
        return float(self.low + u * (self.high - self.low))


@dataclasses.dataclass(frozen=True)
class Choice:
    """A discrete dimension: one of ``points``, each equally likely."""

    name: str
    points: tuple[Any, ...]

    def value(self, u: float) -> Any:
        return self.points[min(int(u * len(self.points)), len(self.points) - 1)]


Dimension = Range | Choice


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """A validated search space: either dimensions to sample or a list of fixed points."""

    dimensions: tuple[Dimension, ...] = ()
    fixed_points: tuple[Point, ...] | None = None

    @property
    def names(self) -> tuple[str, ...]:
        if self.fixed_points is not None:
            return tuple(sorted({name for point in self.fixed_points for name in point}))
        return tuple(dim.name for dim in self.dimensions)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _parse_dimension(name: Any, raw: Any) -> Dimension:
    if not isinstance(name, str) or not name:
        raise SearchSpaceError(f"hyperparameter names must be non-empty strings, got {name!r}")
    if not isinstance(raw, Mapping):
        raise SearchSpaceError(
            f"{name}: expected {{'min', 'max', 'scaling'}} or {{'feasible_points'}}, got {raw!r}"
        )
    keys = set(raw)
    if keys == {"feasible_points"}:
        points = raw["feasible_points"]
        if isinstance(points, str | bytes) or not isinstance(points, Sequence) or not points:
            raise SearchSpaceError(f"{name}: feasible_points must be a non-empty list")
        for point in points:
            if not (point is None or isinstance(point, str | bool) or _is_number(point)):
                raise SearchSpaceError(
                    f"{name}: feasible point {point!r} is not a number, string, bool or null"
                )
            if _is_number(point) and not math.isfinite(point):
                raise SearchSpaceError(f"{name}: feasible point {point!r} is not finite")
        return Choice(name, tuple(points))
    if keys == {"min", "max", "scaling"}:
        low, high, scaling = raw["min"], raw["max"], raw["scaling"]
        if not (_is_number(low) and _is_number(high)):
            raise SearchSpaceError(f"{name}: min and max must be numbers, got {low!r}, {high!r}")
        if not (math.isfinite(low) and math.isfinite(high)) or low > high:
            raise SearchSpaceError(f"{name}: need finite min <= max, got min={low}, max={high}")
        if scaling not in tuple(Scaling):
            raise SearchSpaceError(f"{name}: scaling must be 'log' or 'linear', got {scaling!r}")
        if scaling == Scaling.LOG and low <= 0:
            raise SearchSpaceError(f"{name}: a log-scaled range needs min > 0, got min={low}")
        return Range(name, float(low), float(high), Scaling(scaling))
    raise SearchSpaceError(
        f"{name}: expected keys min, max, scaling or feasible_points, got {sorted(map(str, keys))}"
    )


def parse(raw: Any) -> SearchSpace:
    """Validate ``raw`` (a mapping, a list of points, or its JSON text) into a `SearchSpace`.

    Raises `SearchSpaceError` with a one-line message naming what to fix.
    """
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as error:
            raise SearchSpaceError(f"search space is not valid JSON: {error}") from error
    if isinstance(raw, SearchSpace):
        return raw
    if isinstance(raw, Mapping):
        return SearchSpace(
            dimensions=tuple(_parse_dimension(name, dim) for name, dim in raw.items())
        )
    if isinstance(raw, Sequence) and not isinstance(raw, bytes):
        if not raw:
            raise SearchSpaceError("a list search space needs at least one point")
        points = []
        for index, point in enumerate(raw):
            if not isinstance(point, Mapping) or not all(isinstance(k, str) for k in point):
                raise SearchSpaceError(
                    f"point {index} of the list is not a mapping of names to values: {point!r}"
                )
            points.append(dict(point))
        return SearchSpace(fixed_points=tuple(points))
    raise SearchSpaceError(
        f"a search space is a mapping of dimensions or a list of points, got {type(raw).__name__}"
    )


def sample(space: SearchSpace | Any, num_points: int, seed: int) -> list[Point]:
    """``num_points`` points of ``space``, quasi-random and determined by ``seed``.

    A list of fixed points gives its first ``min(num_points, len(list))`` points in order
    (AlgoPerf's rule). Dimensions are sampled with a scrambled Halton sequence seeded by
    ``seed``: well spread for any number of points, and different for different seeds.
    """
    from scipy.stats import qmc

    space = parse(space)
    if num_points <= 0:
        raise ValueError(f"num_points must be positive, got {num_points}")
    if space.fixed_points is not None:
        return [dict(point) for point in space.fixed_points[:num_points]]
    if not space.dimensions:
        return [{} for _ in range(num_points)]
    sampler = qmc.Halton(d=len(space.dimensions), scramble=True, seed=seed)
    unit = sampler.random(num_points)
    return [
        {dim.name: dim.value(float(u)) for dim, u in zip(space.dimensions, row, strict=True)}
        for row in unit
    ]
