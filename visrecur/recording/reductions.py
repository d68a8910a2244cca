"""Reductions of a state's activity before it is stored: none, spatial mean, k x k pooling, seeded sparse
random projection, PCA fitted on a fitting set. One reduction serves every time step of a state, so
reduced trajectories stay comparable over time."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from visrecur.errors import InputError

METHODS = ("none", "mean", "pool", "srp", "pca")


@dataclass
class Reduction:
    method: str = "none"
    size: int | None = None  # k for pool, output features for srp and pca
    seed: int = 0
    _fitted: dict = field(default_factory=dict, repr=False)

    @classmethod
    def parse(cls, text: str | None, seed: int = 0) -> "Reduction":
        """'none', 'mean', 'pool:K', 'srp:D' or 'pca:D'."""
        text = text or "none"
        method, _, arg = text.partition(":")
        if method not in METHODS:
            raise InputError(f"reduction {text!r} not understood; use none, mean, pool:K, srp:D or pca:D")
        if method in ("pool", "srp", "pca"):
            if not arg.isdigit() or int(arg) < 1:
                raise InputError(f"reduction {text!r} needs a positive size, e.g. "
                                 f"{method}:{2 if method == 'pool' else 100}")
            return cls(method, int(arg), seed)
        if arg:
            raise InputError(f"reduction {method!r} takes no size; drop ':{arg}'")
        return cls(method, None, seed)

    def describe(self) -> str:
        return {"none": "none (full channel x y x x maps)", "mean": "spatial mean over y and x",
                "pool": f"adaptive average pooling to {self.size}x{self.size}",
                "srp": f"sparse random projection to {self.size} features (scikit-learn, random_state={self.seed})",
                "pca": f"PCA to {self.size} components, fitted per state on a fitting set over all steps"}[self.method]

    def basis_sha256(self) -> str:
        """A hash of what the stored values depend on beyond method and size: the fitted PCA bases
        (components and means of every state), or the projection's seed; "" for the others."""
        import hashlib

        if self.method == "srp":
            return hashlib.sha256(f"srp:{self.size}:{self.seed}".encode()).hexdigest()
        if self.method != "pca":
            return ""
        digest = hashlib.sha256()
        for state in sorted(self._fitted):
            pca = self._fitted[state]
            digest.update(state.encode())
            digest.update(np.ascontiguousarray(pca.components_, dtype=np.float64).tobytes())
            digest.update(np.ascontiguousarray(pca.mean_, dtype=np.float64).tobytes())
        return digest.hexdigest()

    def dims(self, state: str, channels: int, height: int, width: int) -> list[tuple[str, int]]:
        """(dimension name, size) of one stimulus at one step; names are prefixed with the state because
        states differ in size."""
        if self.method == "none":
            return [(f"{state}_channel", channels), (f"{state}_y", height), (f"{state}_x", width)]
        if self.method == "mean":
            return [(f"{state}_channel", channels)]
        if self.method == "pool":
            k = self.size
            return [(f"{state}_channel", channels), (f"{state}_y", min(k, height)), (f"{state}_x", min(k, width))]
        features = channels * height * width
        if self.method == "pca" and state in self._fitted:
            return [(f"{state}_feature", self._fitted[state].n_components_)]
        return [(f"{state}_feature", min(self.size, features) if self.method == "pca" else self.size)]

    def __call__(self, state: str, activity: torch.Tensor) -> np.ndarray:
        """(batch, C, H, W) tensor -> float32 numpy array of the reduced shape."""
        activity = activity.detach().float()
        if self.method == "none":
            return activity.cpu().numpy()
        if self.method == "mean":
            return activity.mean(dim=(2, 3)).cpu().numpy()
        if self.method == "pool":
            h, w = activity.shape[-2:]
            return F.adaptive_avg_pool2d(activity, (min(self.size, h), min(self.size, w))).cpu().numpy()
        flat = activity.flatten(1).cpu().numpy()
        return self._transformer(state, flat.shape[1]).transform(flat).astype(np.float32)

    def _transformer(self, state: str, features: int):
        if state not in self._fitted:
            if self.method == "pca":
                raise InputError("PCA must be fitted first: Reduction.fit_pca(...) (the recorder does this on "
                                 "the fitting set)")
            from sklearn.random_projection import SparseRandomProjection

            srp = SparseRandomProjection(n_components=self.size, dense_output=True, random_state=self.seed)
            self._fitted[state] = srp.fit(np.zeros((1, features), dtype=np.float32))
        return self._fitted[state]

    def fit_pca(self, activity_by_state: dict[str, np.ndarray]) -> None:
        """Fit one PCA per state on (samples, features) activity pooled over stimuli and steps."""
        from sklearn.decomposition import PCA

        for state, samples in activity_by_state.items():
            n = min(self.size, samples.shape[0], samples.shape[1])
            self._fitted[state] = PCA(n_components=n, random_state=self.seed).fit(samples)
