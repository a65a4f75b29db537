"""The search space: one class per distribution, each able to sample, map to and from the
unit interval, and enumerate its grid. Pure numpy.

The unit-cube encoding is what model-based strategies work in: numeric dimensions become
one coordinate in [0, 1] (log distributions in log space, Gaussians through their CDF,
integers as equal-width bins so none collapses), categoricals become a one-hot block.
"""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

import numpy as np
from scipy import special, stats

from kubesweep.spec import Distribution, Parameter, flatten_parameters

Params = dict[str, Any]

#: Keeps CDF-mapped coordinates away from 0 and 1, where Gaussian quantiles are infinite.
_EDGE = 1e-6
#: Continuous values are rounded to this many significant digits: no training run can
#: tell more apart, they print cleanly, and they round-trip exactly through float32, which
#: keeps the history of a 10,000-trial sweep small enough for its status.
SIGNIFICANT_DIGITS = 6


def round_significant(x: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """`x` rounded to `digits` significant digits."""
    if x == 0 or not math.isfinite(x):
        return float(x)
    return float(f"{x:.{digits}g}")


def _clip(x: float, low: float, high: float) -> float:
    """x limited to [low, high] (NaN stays NaN, as with np.clip)."""
    return min(max(x, low), high)


def _to_python(value: Any) -> Any:
    """numpy scalars → plain Python, so params serialise to JSON and YAML cleanly."""
    if isinstance(value, np.generic):
        return value.item()
    return value


def _decimals(q: float) -> int:
    """Decimal places of q as written (0.125 → 3, 2.341 → 3, 1e-05 → 5)."""
    exponent = Decimal(repr(float(q))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def _quantize(x: float, q: float, low: float | None = None,
              high: float | None = None) -> float | int:
    """The multiple of q nearest to x (and inside [low, high] when given), exactly as many
    decimals as q has.

    A multiple of q has no more decimals than q itself, so rounding k·q to them only removes
    float noise (0.30000000000000004 → 0.3) and never moves the value off the lattice.
    Bounds that are not multiples of q pull the nearest multiple inside them: W&B's
    round(x / q) * q would give 0 for min 1, max 6, q 5, which the range excludes.
    """
    ratio = x / q
    if not math.isfinite(ratio) or abs(ratio) > 2**53:
        # q is below float resolution at x (q_normal's tail, q_beta with q=1e-300): every
        # float there is as close to a multiple of q as floats can be, so x stays as it is
        return float(x)
    k = round(ratio)
    if low is not None:
        k = max(k, math.ceil(low / q - 1e-9))
    if high is not None:
        k = min(k, math.floor(high / q + 1e-9))
    if float(q).is_integer():
        return int(k * int(q))
    return round(k * q, _decimals(q)) + 0.0  # + 0.0: no -0.0


class Dimension(ABC):
    """One parameter of the space."""

    #: Width of this dimension in the unit-cube encoding.
    width = 1
    #: `numeric` dimensions are ordered; `categorical` ones are one-hot blocks.
    kind = "numeric"

    def __init__(self, name: str, param: Parameter) -> None:
        self.name = name
        self.param = param

    @abstractmethod
    def sample(self, rng: np.random.Generator) -> Any:
        """Draw one value from the distribution."""

    @abstractmethod
    def from_unit(self, u: float) -> Any:
        """The value at unit coordinate `u` in [0, 1] (inverse CDF of the search measure)."""

    @abstractmethod
    def to_unit(self, value: Any) -> float:
        """The unit coordinate of `value` (inverse of from_unit up to rounding)."""

    def grid(self) -> list[Any]:
        """Every value a grid search visits, in a stable order."""
        raise ValueError(f"parameters.{self.name}: {self.param.distribution.value} has no grid")

    def grid_size(self) -> int:
        """How many grid points this dimension has (without building them all)."""
        return len(self.grid())

    def encode(self, value: Any) -> list[float]:
        """Coordinates of `value` in the unit-cube encoding."""
        return [self.to_unit(value)]

    def decode(self, coords: np.ndarray) -> Any:
        """The value at unit-cube coordinates `coords` (length `width`)."""
        # min/max, not np.clip: this runs per coordinate of every candidate, and np.clip on a
        # scalar costs ~20x more (same result, NaN included)
        return self.from_unit(_clip(float(coords[0]), 0.0, 1.0))


class Constant(Dimension):
    """`value: X` — the same value in every trial."""

    width = 0

    def sample(self, rng: np.random.Generator) -> Any:
        return self.param.value

    def from_unit(self, u: float) -> Any:
        return self.param.value

    def to_unit(self, value: Any) -> float:
        return 0.5

    def grid(self) -> list[Any]:
        return [self.param.value]

    def encode(self, value: Any) -> list[float]:
        return []

    def decode(self, coords: np.ndarray) -> Any:
        return self.param.value


class Categorical(Dimension):
    """`values: [...]`, optionally weighted by `probabilities`."""

    kind = "categorical"

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        self.values: list[Any] = list(param.values or [])
        self.width = len(self.values)
        probs = param.probabilities
        self.probabilities = np.asarray(probs if probs else [1.0] * self.width, dtype=float)
        self.probabilities = self.probabilities / self.probabilities.sum()
        self._cumulative = np.cumsum(self.probabilities)

    def index(self, value: Any) -> int:
        """Position of `value` among the choices (type-exact, so 1 and True differ)."""
        for i, choice in enumerate(self.values):
            if choice == value and type(choice) is type(value):
                return i
        for i, choice in enumerate(self.values):
            if choice == value:
                return i
        raise ValueError(f"parameters.{self.name}: {value!r} is not one of {self.values}")

    def sample(self, rng: np.random.Generator) -> Any:
        return self.values[int(rng.choice(self.width, p=self.probabilities))]

    def from_unit(self, u: float) -> Any:
        i = int(np.searchsorted(self._cumulative, u, side="right"))
        return self.values[min(i, self.width - 1)]

    def to_unit(self, value: Any) -> float:
        i = self.index(value)
        low = self._cumulative[i - 1] if i else 0.0
        return float((low + self._cumulative[i]) / 2)

    def grid(self) -> list[Any]:
        unique: list[Any] = []
        for v in self.values:
            if not any(v == u and type(v) is type(u) for u in unique):
                unique.append(v)
        return unique

    def encode(self, value: Any) -> list[float]:
        onehot = [0.0] * self.width
        onehot[self.index(value)] = 1.0
        return onehot

    def decode(self, coords: np.ndarray) -> Any:
        return self.values[int(np.argmax(coords))]


class IntUniform(Dimension):
    """`int_uniform`: integers min..max inclusive, each equally likely."""

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        self.low, self.high = int(param.min), int(param.max)

    def sample(self, rng: np.random.Generator) -> int:
        return int(rng.integers(self.low, self.high + 1))

    def from_unit(self, u: float) -> int:
        # equal-width bins over [low - .5, high + .5] so the end points get a full bin each
        n = self.high - self.low + 1
        return self.low + min(int(u * n), n - 1)

    def to_unit(self, value: Any) -> float:
        n = self.high - self.low + 1
        return (int(round(value)) - self.low + 0.5) / n

    def grid(self) -> list[int]:
        return list(range(self.low, self.high + 1))

    def grid_size(self) -> int:
        return self.high - self.low + 1


def _lattice(low: float, high: float, q: float, first_at_least: int | None = None) -> list[Any]:
    """Distinct multiples of q in [low, high], ascending."""
    first = math.ceil(low / q - 1e-9)
    if first_at_least is not None:
        first = max(first, first_at_least)
    last = math.floor(high / q + 1e-9)
    return list(dict.fromkeys(_quantize(k * q, q) for k in range(first, last + 1)))


class _Interval(Dimension):
    """A distribution uniform on [low, high] in some coordinate t = forward(x)."""

    low: float
    high: float
    q: float | None

    def forward(self, x: float) -> float:
        """The coordinate in which the distribution is uniform."""
        return x

    @abstractmethod
    def _finish(self, t: float) -> float | int:
        """The parameter value at coordinate t (rounded or quantized)."""

    def sample(self, rng: np.random.Generator) -> float | int:
        return self._finish(rng.uniform(self.low, self.high))

    def from_unit(self, u: float) -> float | int:
        return self._finish(self.low + u * (self.high - self.low))

    def to_unit(self, value: Any) -> float:
        t = self.forward(float(value))
        return _clip((t - self.low) / (self.high - self.low), 0.0, 1.0)


class Uniform(_Interval):
    """`uniform` and `q_uniform`: reals (or multiples of q) between min and max."""

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        self.low, self.high = float(param.min), float(param.max)
        self.q = param.q if param.distribution is Distribution.q_uniform else None

    def _finish(self, t: float) -> float | int:
        if self.q is None:
            return min(max(round_significant(t), self.low), self.high)
        return _quantize(t, self.q, self.low, self.high)

    def grid(self) -> list[Any]:
        if self.q is None:
            return super().grid()
        return _lattice(self.low, self.high, self.q)

    def grid_size(self) -> int:
        if self.q is None:
            return super().grid_size()
        return math.floor(self.high / self.q + 1e-9) - math.ceil(self.low / self.q - 1e-9) + 1


class LogUniform(_Interval):
    """`log_uniform_values`, `q_log_uniform_values`, `inv_log_uniform_values`.

    All three draw log(x) uniformly between log(min) and log(max); the `inv_` form is
    W&B's parametrisation of log(1/x), which is the same measure on x.
    """

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        self.low, self.high = math.log(param.min), math.log(param.max)
        quantized = param.distribution is Distribution.q_log_uniform_values
        self.q = (param.q or 1.0) if quantized else None

    def forward(self, x: float) -> float:
        return math.log(max(x, 1e-300))

    def _finish(self, t: float) -> float | int:
        x = math.exp(t)
        if self.q is None:
            return min(max(round_significant(x), self.param.min), self.param.max)
        return _quantize(x, self.q, self.param.min, self.param.max)

    def grid(self) -> list[Any]:
        if self.q is None:
            return super().grid()
        return _lattice(self.param.min, self.param.max, self.q, first_at_least=1)


class Gaussian(Dimension):
    """`normal`, `q_normal`, `log_normal`, `q_log_normal` (mu, sigma of the normal)."""

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        dist = param.distribution
        self.mu = param.mu if param.mu is not None else 0.0
        self.sigma = param.sigma if param.sigma is not None else 1.0
        self.log = dist in (Distribution.log_normal, Distribution.q_log_normal)
        quantized = dist in (Distribution.q_normal, Distribution.q_log_normal)
        self.q = (param.q or 1.0) if quantized else None

    def _finish(self, z: float) -> float | int:
        # the spec keeps mu + 10·sigma below e^700; a draw further out still must not overflow
        x = math.exp(min(z, 709.0)) if self.log else z
        return round_significant(x) if self.q is None else _quantize(x, self.q)

    def sample(self, rng: np.random.Generator) -> float | int:
        return self._finish(rng.normal(self.mu, self.sigma))

    def from_unit(self, u: float) -> float | int:
        u = min(max(u, _EDGE), 1 - _EDGE)
        return self._finish(self.mu + self.sigma * math.sqrt(2) * special.erfinv(2 * u - 1))

    def to_unit(self, value: Any) -> float:
        x = float(value)
        z = math.log(max(x, 1e-300)) if self.log else x
        u = 0.5 * (1 + math.erf((z - self.mu) / (self.sigma * math.sqrt(2))))
        return min(max(u, _EDGE), 1 - _EDGE)


class Beta(Dimension):
    """`beta` and `q_beta` with shape parameters a and b on [0, 1]."""

    def __init__(self, name: str, param: Parameter) -> None:
        super().__init__(name, param)
        self.dist = stats.beta(param.a or 1.0, param.b or 1.0)
        self.q = (param.q or 1.0) if param.distribution is Distribution.q_beta else None

    def _finish(self, x: float) -> float | int:
        return round_significant(x) if self.q is None else _quantize(x, self.q)

    def sample(self, rng: np.random.Generator) -> float | int:
        return self._finish(float(rng.beta(self.dist.args[0], self.dist.args[1])))

    def from_unit(self, u: float) -> float | int:
        return self._finish(float(self.dist.ppf(min(max(u, _EDGE), 1 - _EDGE))))

    def to_unit(self, value: Any) -> float:
        return _clip(float(self.dist.cdf(float(value))), _EDGE, 1 - _EDGE)


_CLASSES: dict[Distribution, type[Dimension]] = {
    Distribution.constant: Constant,
    Distribution.categorical: Categorical,
    Distribution.int_uniform: IntUniform,
    Distribution.uniform: Uniform,
    Distribution.q_uniform: Uniform,
    Distribution.log_uniform_values: LogUniform,
    Distribution.q_log_uniform_values: LogUniform,
    Distribution.inv_log_uniform_values: LogUniform,
    Distribution.normal: Gaussian,
    Distribution.q_normal: Gaussian,
    Distribution.log_normal: Gaussian,
    Distribution.q_log_normal: Gaussian,
    Distribution.beta: Beta,
    Distribution.q_beta: Beta,
}


def make_dimension(name: str, param: Parameter) -> Dimension:
    """The Dimension class for a validated parameter."""
    return _CLASSES[param.distribution](name, param)


class Space:
    """All parameters of a sweep, in the order the manifest lists them."""

    def __init__(self, parameters: Mapping[str, Parameter]) -> None:
        # nested `parameters:` become dimensions named outer.inner (see spec.nest_params)
        leaves = flatten_parameters(dict(parameters))
        self.dimensions = [make_dimension(name, p) for name, p in leaves.items()]
        self.names = [d.name for d in self.dimensions]
        offsets = np.cumsum([0] + [d.width for d in self.dimensions])
        #: slice of the encoded vector for each dimension
        self.slices = {d.name: slice(int(offsets[i]), int(offsets[i + 1]))
                       for i, d in enumerate(self.dimensions)}
        #: length of the unit-cube encoding
        self.width = int(offsets[-1])

    def sample(self, rng: np.random.Generator) -> Params:
        """One independent draw of every parameter."""
        return {d.name: _to_python(d.sample(rng)) for d in self.dimensions}

    def encode(self, params: Mapping[str, Any]) -> np.ndarray:
        """Unit-cube coordinates of a parameter set (shape `(width,)`)."""
        out: list[float] = []
        for d in self.dimensions:
            # a null value may be missing: the status history and the API server drop nulls
            out.extend(d.encode(params.get(d.name)))
        return np.asarray(out, dtype=float)

    def encode_many(self, params_list: list[Mapping[str, Any]]) -> np.ndarray:
        """Encode several parameter sets into a `(n, width)` array."""
        if not params_list:
            return np.zeros((0, self.width))
        return np.vstack([self.encode(p) for p in params_list])

    def decode(self, coords: np.ndarray) -> Params:
        """The parameter set at unit-cube coordinates (rounded to valid values)."""
        return {d.name: _to_python(d.decode(coords[self.slices[d.name]]))
                for d in self.dimensions}

    def canonical(self, params: Mapping[str, Any]) -> np.ndarray:
        """Encoding of the decoded point: equal for parameter sets a trial cannot tell apart."""
        return self.encode(self.decode(self.encode(params)))

    def snap(self, coords: np.ndarray) -> np.ndarray:
        """`canonical(decode(coords))`, at half the cost: decoded values are fixed points of
        decode∘encode (tests/unit/test_space.py checks it for every distribution), so one
        decode and one encode suffice. Candidate pools snap thousands of points per ask."""
        return self.encode(self.decode(coords))

    def grid_size(self) -> int:
        """Number of points of the full grid (product of each dimension's grid)."""
        return math.prod(d.grid_size() for d in self.dimensions)

    def grid(self) -> Iterator[Params]:
        """The Cartesian product of every dimension's grid, first parameter slowest."""
        axes = [d.grid() for d in self.dimensions]
        for combo in itertools.product(*axes):
            yield {name: _to_python(v) for name, v in zip(self.names, combo, strict=True)}

    @property
    def numeric_columns(self) -> list[int]:
        """Encoded columns of ordered (numeric) dimensions."""
        return [self.slices[d.name].start for d in self.dimensions
                if d.kind == "numeric" and d.width == 1]

    @property
    def categorical_blocks(self) -> list[slice]:
        """Encoded one-hot blocks of categorical dimensions."""
        return [self.slices[d.name] for d in self.dimensions if d.kind == "categorical"]


def params_key(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a parameter set (for de-duplication).

    A null value counts as absent: a trial read back from the status history has lost
    its nulls, and must still match the grid point it ran.
    """
    return tuple(sorted((k, repr(v)) for k, v in params.items() if v is not None))
