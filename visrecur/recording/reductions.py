"""Reductions of a state's activity before it is stored: a registry, ``METHODS``, of one class each
(none, spatial mean, k x k pooling, seeded sparse random projection, PCA fitted on a fitting set). One
reduction serves every time step of a state, so reduced trajectories stay comparable over time.

A new reduction is one subclass of ``Reduction`` with ``method``, ``describe``, ``dims`` and ``reduce``
(plus ``takes_size``, and ``fit`` where it is fitted), registered with ``@method``.
"""
from __future__ import annotations

import hashlib

import numpy as np
import torch
import torch.nn.functional as F

from visrecur.errors import InputError

METHODS: dict[str, type["Reduction"]] = {}


def method(cls):
    """Register a reduction class under its ``method`` name."""
    METHODS[cls.method] = cls
    return cls


class Reduction:
    """What a (batch, C, H, W) activity becomes: ``reduction(state, activity)`` -> float32 numpy array."""

    method = ""
    takes_size = False
    seeded = False  # whether the stored values depend on ``seed``
    example_size = 100

    def __init__(self, size: int | None = None, seed: int = 0):
        self.size, self.seed = size, seed
        self._fitted: dict = {}

    @staticmethod
    def parse(text: str | None, seed: int = 0) -> "Reduction":
        """'none', 'mean', 'pool:K', 'srp:D' or 'pca:D' (any registered method)."""
        if isinstance(text, str) and not text.strip():
            raise InputError("reduction '' is empty; give none, mean, pool:K, srp:D or pca:D")
        text = text or "none"
        if not isinstance(text, str):
            raise InputError(f"reduction {text!r} must be a word such as 'mean' or 'pca:50'")
        name, _, arg = text.partition(":")
        if name not in METHODS:
            forms = ", ".join(f"{m}:{'K' if m == 'pool' else 'D'}" if c.takes_size else m for m, c in METHODS.items())
            raise InputError(f"reduction {text!r} not understood; use {forms}")
        cls = METHODS[name]
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 2 ** 32:
            raise InputError(f"seed {seed!r} must be an integer from 0 to 2**32 - 1")
        if cls.takes_size:
            if not arg.isdigit() or int(arg) < 1:
                raise InputError(f"reduction {text!r} needs a positive size, e.g. {name}:{cls.example_size}")
            return cls(int(arg), seed)
        if arg:
            raise InputError(f"reduction {name!r} takes no size; drop ':{arg}'")
        return cls(None, seed)

    @property
    def spec(self) -> str:
        """The word that ``parse`` reads back, e.g. 'pca:50'."""
        return f"{self.method}:{self.size}" if self.takes_size else self.method

    def describe(self) -> str:
        raise NotImplementedError

    def dims(self, state: str, channels: int, height: int, width: int) -> list[tuple[str, int]]:
        """(dimension name, size) of one stimulus at one step; names are prefixed with the state because
        states differ in size."""
        raise NotImplementedError

    def reduce(self, state: str, activity: torch.Tensor) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, state: str, activity: torch.Tensor) -> np.ndarray:
        """(batch, C, H, W) tensor -> float32 numpy array of the reduced shape."""
        return self.reduce(state, activity.detach().float())

    def basis_sha256(self) -> str:
        """A hash of what the stored values depend on beyond method and size ("" for none)."""
        return ""

    def needs_fit(self) -> bool:
        return False

    def notes(self, sizes: dict) -> list[str]:
        """What it does not do as asked, for the states' ``sizes`` {state: (channels, height, width)}:
        said in a warning and in the recording's ``reduction_notes`` attr."""
        return []

    def fit(self, activity_by_state: dict[str, np.ndarray]) -> None:
        raise InputError(f"reduction {self.method!r} is not fitted")

    def __repr__(self):
        return f"Reduction({self.spec!r}, seed={self.seed})"


@method
class Full(Reduction):
    method = "none"

    def describe(self):
        return "none (full channel x y x x maps)"

    def dims(self, state, channels, height, width):
        return [(f"{state}_channel", channels), (f"{state}_y", height), (f"{state}_x", width)]

    def reduce(self, state, activity):
        return activity.cpu().numpy()


@method
class SpatialMean(Reduction):
    method = "mean"

    def describe(self):
        return "spatial mean over y and x"

    def dims(self, state, channels, height, width):
        return [(f"{state}_channel", channels)]

    def reduce(self, state, activity):
        return activity.mean(dim=(2, 3)).cpu().numpy()


@method
class Pool(Reduction):
    method, takes_size, example_size = "pool", True, 2

    def describe(self):
        return f"adaptive average pooling to {self.size}x{self.size}"

    def dims(self, state, channels, height, width):
        k = self.size
        return [(f"{state}_channel", channels), (f"{state}_y", min(k, height)), (f"{state}_x", min(k, width))]

    def notes(self, sizes):
        return [f"{name}'s map is {h}x{w}, not larger than {self.size}: it is not pooled"
                for name, (_, h, w) in sizes.items() if self.size >= max(h, w)]

    def reduce(self, state, activity):
        h, w = activity.shape[-2:]
        return F.adaptive_avg_pool2d(activity, (min(self.size, h), min(self.size, w))).cpu().numpy()


class _Projection(Reduction):
    """A flattening projection (random or fitted) to ``size`` features."""

    takes_size = True

    def reduce(self, state, activity):
        flat = activity.flatten(1).cpu().numpy()
        return self._transformer(state, flat.shape[1]).transform(flat).astype(np.float32)

    def _transformer(self, state: str, features: int):
        return self._fitted[state]


@method
class SparseRandomProjection(_Projection):
    method, seeded = "srp", True

    def describe(self):
        return f"sparse random projection to {self.size} features (scikit-learn, random_state={self.seed})"

    def dims(self, state, channels, height, width):
        return [(f"{state}_feature", self.size)]

    def basis_sha256(self):
        return hashlib.sha256(f"srp:{self.size}:{self.seed}".encode()).hexdigest()

    def _transformer(self, state, features):
        if state not in self._fitted:
            from sklearn.random_projection import SparseRandomProjection as SRP

            srp = SRP(n_components=self.size, dense_output=True, random_state=self.seed)
            self._fitted[state] = srp.fit(np.zeros((1, features), dtype=np.float32))
        return self._fitted[state]


@method
class PCA(_Projection):
    method, seeded = "pca", True

    def describe(self):
        return f"PCA to {self.size} components, fitted per state on a fitting set over all steps"

    def dims(self, state, channels, height, width):
        if state in self._fitted:
            return [(f"{state}_feature", self._fitted[state].n_components_)]
        return [(f"{state}_feature", min(self.size, channels * height * width))]

    def needs_fit(self):
        return True

    def fit(self, activity_by_state):
        """Fit one PCA per state on (samples, features) activity pooled over stimuli and steps."""
        from sklearn.decomposition import PCA as SklearnPCA

        for state, samples in activity_by_state.items():
            n = min(self.size, samples.shape[0], samples.shape[1])
            self._fitted[state] = SklearnPCA(n_components=n, random_state=self.seed).fit(samples)

    def notes(self, sizes):
        return [f"{name}: {self._fitted[name].n_components_} PCA components, not {self.size} (the fitting set gives "
                "at most min(samples, features))" for name in sizes
                if name in self._fitted and self._fitted[name].n_components_ < self.size]

    def basis_sha256(self):
        """A hash of the fitted bases (components and means of every state)."""
        digest = hashlib.sha256()
        for state in sorted(self._fitted):
            pca = self._fitted[state]
            digest.update(state.encode())
            digest.update(np.ascontiguousarray(pca.components_, dtype=np.float64).tobytes())
            digest.update(np.ascontiguousarray(pca.mean_, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def _transformer(self, state, features):
        if state not in self._fitted:
            raise InputError("PCA must be fitted first: Reduction.fit(...) (the recorder does this on the "
                             "fitting set)")
        return self._fitted[state]
