"""Controls beside every model score: what a score means only next to what no training (or no model)
gives on the same stimuli.

- ``pixel_input``: the RDM of the model's preprocessed input (the 32x32 normalised pixels the model
  sees); ``pixel_raw``: of the decoded image as stored (e.g. 175x175 RGB for the 92 images).
- ``untrained``: the model's own architecture (its checkpoint's spec) with freshly drawn weights, one
  recording per seed (``UNTRAINED_SEEDS``), same stimuli, same preprocessing, same states and steps;
  the batch-norm statistics are the initial ones (mean 0, variance 1), as a network never shown data has.
- ``feedforward``: the unshared-weight (time-variant) twin of the architecture, untrained likewise. No
  trained twin exists for the shipped models, so only the untrained one can be reported.
- ``category``: binary model RDMs (0 within a group, 1 between groups) from the stimulus labels; for the
  92 images the labels are the ``categoryVectors`` of Kriegeskorte et al. 2008's supplementary file
  (``Kriegeskorte_Neuron2008_supplementalData.mat``): animate 1-48 / inanimate 49-92; faces 13-24 and
  37-48; bodies 1-12 and 25-36; natural objects 49-71 / artificial objects 72-92 (1-based positions in
  the published order, which is the order of the 92-image ids).
"""
from __future__ import annotations

import json
from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from scipy.spatial.distance import pdist, squareform

from .errors import ScoringError
from .rdm import METRICS, as_rdm, model_rdms
from .targets import IDS_92, KRIEGESKORTE_FILE, RSATOOLBOX_SOURCE, _loadmat, data_file

CONTROLS = ("pixel", "untrained", "feedforward", "category")
UNTRAINED_SEEDS = (0, 1, 2, 3, 4)
# group of every stimulus per category model, from categoryVectors' columns (names as in categoryLabels)
CATEGORY_MODELS = {
    "animacy": {"animate": "animate", "inanim": "inanimate"},
    "faces": {"face": "face"},
    "bodies": {"body": "body"},
    "natural_artificial": {"natObj": "natural object", "artiObj": "artificial object"},
}


class ControlError(ScoringError):
    """A control that cannot be computed for this model or these stimuli."""


# --- pixels -------------------------------------------------------------------------------------------
def pixel_rdms(stimuli, preprocess, metric: str = "correlation") -> xr.DataArray:
    """RDMs of the preprocessed input (``pixel_input``) and of the decoded images (``pixel_raw``), dims
    ``control, stimulus, stimulus_b``. Images of different sizes have no raw pixel RDM (only
    ``pixel_input`` then)."""
    if metric not in METRICS:
        raise ScoringError(f"unknown RDM metric {metric!r}; use one of {', '.join(METRICS)}")
    images = [np.asarray(stimuli.image(k)) for k in range(len(stimuli))]
    inputs = np.stack([preprocess(stimuli.image(k)).numpy().ravel() for k in range(len(stimuli))])
    matrices, names = [squareform(pdist(inputs.astype(np.float64), metric))], ["pixel_input"]
    if len({im.shape for im in images}) == 1:
        raw = np.stack([im.ravel() for im in images]).astype(np.float64)
        matrices.append(squareform(pdist(raw, metric)))
        names.append("pixel_raw")
    return as_rdm(np.stack(matrices), stimuli.ids, {"control": names}, "pixel_rdms",
                  {"metric": metric, "pixel_input": f"the model input: {preprocess.describe()}",
                   "pixel_raw": "the decoded RGB image as stored, every pixel and channel"})


# --- category model RDMs ------------------------------------------------------------------------------
def category_labels(ids: Sequence[str], metadata=None, folder=None) -> dict[str, list[str]]:
    """{category model: group of every stimulus} for the 92 images (from the 2008 supplementary file),
    else from a ``category`` column of the stimulus metadata with at least two values; {} without labels."""
    ids = [str(i) for i in ids]
    if sorted(ids) == sorted(IDS_92):
        mat = _loadmat(data_file(KRIEGESKORTE_FILE, RSATOOLBOX_SOURCE, folder))
        labels = [str(v) for v in mat["categoryLabels"]]
        vectors = np.asarray(mat["categoryVectors"], dtype=bool)
        position = {i: k for k, i in enumerate(IDS_92)}
        out = {}
        for model, columns in CATEGORY_MODELS.items():
            group = np.full(92, "other", dtype=object)
            for column, name in columns.items():
                group[vectors[:, labels.index(column)]] = name
            out[model] = [str(group[position[i]]) for i in ids]
        return out
    if metadata is not None and "category" in metadata:
        by_id = dict(zip(metadata["stimulus_id"].astype(str), metadata["category"].astype(str)))
        values = [by_id.get(i, "") for i in ids]
        if len(set(values)) > 1 and all(values):
            return {"labels": values}
    return {}


def category_rdms(ids: Sequence[str], metadata=None, folder=None) -> xr.DataArray | None:
    """Binary category RDMs (1 between groups, 0 within), dims ``control, stimulus, stimulus_b``, named
    ``category_<model>``; None when the stimuli have no labels."""
    labels = category_labels(ids, metadata, folder)
    if not labels:
        return None
    matrices = [(np.asarray(g)[:, None] != np.asarray(g)[None, :]).astype(float) for g in labels.values()]
    return as_rdm(np.stack(matrices), ids, {"control": [f"category_{m}" for m in labels]}, "category_rdms",
                  {"groups": json.dumps({m: sorted(set(g)) for m, g in labels.items()}),
                   "source": f"categoryVectors of {KRIEGESKORTE_FILE}" if sorted(ids) == sorted(IDS_92)
                   else "the stimulus set's category column"})


# --- untrained twins ----------------------------------------------------------------------------------
def twin_spec(spec: dict | str, feedforward: bool = False, name: str = "model") -> dict:
    """The spec of the untrained control: the model's own (``feedforward``: with unshared weights, the
    zoo's time-variant twin). Refuses a model that states no spec, or has no such twin."""
    from visrecur.architecture import zoo

    if not spec:
        raise ControlError(f"model {name!r} states no architecture (no model_spec in its recording or "
                           "checkpoint), so it has no untrained twin; record it with python -m visrecur.record "
                           "from a checkpoint, or leave out the untrained and feedforward controls")
    spec = json.loads(spec) if isinstance(spec, str) else json.loads(json.dumps(spec))
    if not feedforward:
        return spec
    base = str(spec.get("name", ""))
    twin = base.replace("_shared", "_unshared") if base.endswith("_shared") else ""
    if spec["graph"]["weight_sharing"] != "shared" or twin not in zoo.list_models():
        raise ControlError(f"model {name!r} ({base or 'no zoo architecture'}) has no feedforward twin in the zoo "
                           "(an unshared-weight variant of a weight-shared architecture: see "
                           "visrecur.list_models()); leave out the feedforward control")
    spec["graph"]["weight_sharing"] = "unshared"
    spec["name"] = twin
    return spec


def untrained_model(spec: dict, seed: int):
    """The architecture of ``spec`` with weights drawn from ``seed``, leaving torch's global random state
    as it was."""
    from visrecur.architecture.modelspec import ModelSpec
    from visrecur.nn.model import FRNN

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return FRNN(ModelSpec.from_dict(spec)).eval()


def untrained_rdms(spec: dict, stimuli, preprocess, states=None, times=None, seeds: Sequence[int] = UNTRAINED_SEEDS,
                   metric: str = "correlation", zscore: bool = False, mapping=None,
                   name: str = "untrained") -> xr.DataArray:
    """RDMs of the untrained ``spec`` recorded once per seed: dims ``seed, state, time, stimulus,
    stimulus_b``, for the same states and steps as the model's."""
    from visrecur.artifacts.models import ModelSource
    from visrecur.recording import record

    if len(seeds) < 1:
        raise ControlError("an untrained control needs at least one seed")
    per_seed = []
    for seed in seeds:
        source = ModelSource(untrained_model(spec, seed), f"{name}_seed{seed}", preprocess=preprocess)
        recording = record(source, stimuli, states=states, times=times, progress=False, ms_per_step=mapping)
        per_seed.append(model_rdms(recording, states, times, metric, zscore))
    rdm = xr.concat(per_seed, "seed", combine_attrs="drop_conflicts").assign_coords(seed=list(seeds))
    rdm.attrs.update(control=name, architecture=spec.get("name", ""),
                     weight_sharing=spec["graph"]["weight_sharing"],
                     weights="untrained: drawn from each seed (torch.manual_seed inside fork_rng)")
    rdm.name = name
    return rdm


# --- every control of a recording ---------------------------------------------------------------------
def recording_stimuli(recording: xr.Dataset, stimuli=None):
    """The stimuli a recording was made on: ``stimuli`` if given, else its stimulus set found again by
    name, checked against the recording's content hash."""
    from visrecur.errors import VisrecurError
    from visrecur.recording.stimuli import resolve

    if stimuli is None:
        name = str(recording.attrs.get("stimulus_set", ""))
        if not name:
            raise ControlError("the recording does not name its stimulus set, so its images are not at hand; "
                               "score the model with --model (and --stimuli)")
        try:
            stimuli = resolve(name)
        except VisrecurError as err:
            raise ControlError(f"the recording's stimuli ({name or 'unnamed'}) cannot be found again ({err}); "
                               "score the model with --model so that its stimuli are at hand") from None
        wanted = str(recording.attrs.get("stimulus_set_sha256", ""))
        if wanted and stimuli.content_hash() != wanted:
            raise ControlError(f"stimulus set {name!r} here is not the one the recording was made on (content "
                               "hash differs); score the model with --model")
    ids = [str(i) for i in recording["stimulus"].values]
    if stimuli.ids != ids:
        stimuli = stimuli.subset([stimuli.ids.index(i) for i in ids]) if set(ids) <= set(stimuli.ids) else None
    if stimuli is None:
        raise ControlError("the recording's stimulus ids are not those of its stimulus set; record it again")
    return stimuli


def gather(recording: xr.Dataset, wanted: Sequence[str] = ("auto",), stimuli=None, states=None, times=None,
           metric: str = "correlation", zscore: bool = False,
           seeds: Sequence[int] = UNTRAINED_SEEDS) -> tuple[dict[str, xr.DataArray], list[str]]:
    """({control: RDM stack}, notes). ``wanted``: names from ``CONTROLS``, or ``auto`` (every control this
    recording allows; what it does not allow is said in the notes). An explicitly asked control that
    cannot be computed is refused (``ControlError``)."""
    from visrecur.artifacts.recordings import time_mapping
    from visrecur.recording.preprocess import Preprocess

    auto = list(wanted) == ["auto"]
    names = list(CONTROLS) if auto else list(dict.fromkeys(wanted))
    unknown = [w for w in names if w not in CONTROLS]
    if unknown or (not auto and "auto" in wanted):
        raise ControlError(f"unknown control {(unknown or ['auto'])[0]!r}; use auto, none or any of {', '.join(CONTROLS)}")
    out, notes = {}, []
    model = str(recording.attrs.get("model", "model"))

    def attempt(name, make):
        try:
            made = make()
        except ControlError as err:
            if not auto:
                raise
            notes.append(f"no {name} control: {err}")
            return
        if made is not None:
            out[name] = made
        else:
            notes.append(f"no {name} control: the stimuli have no category labels")

    def at_hand():
        return recording_stimuli(recording, stimuli)

    def metadata():
        try:
            return at_hand().metadata
        except ControlError:  # the 92 images' labels need no images; other sets' come with their images
            return None

    def preprocess():
        text = recording.attrs.get("preprocess")
        if not text:
            raise ControlError(f"the recording of {model!r} does not say its preprocessing")
        return Preprocess.from_dict(json.loads(text))

    def untrained(feedforward):
        if str(recording.attrs.get("trained", "yes")) != "yes":
            raise ControlError(f"model {model!r} is untrained itself, so it has no untrained twin to compare with")
        spec = twin_spec(recording.attrs.get("model_spec", ""), feedforward, model)
        used_states = states or [str(s) for s in str(recording.attrs.get("states", "")).split()] or None
        used_times = times if times is not None else [int(t) for t in recording["time"].values]
        label = "feedforward_untrained" if feedforward else "untrained"
        return untrained_rdms(spec, at_hand(), preprocess(), used_states, used_times, seeds, metric, zscore,
                              time_mapping(recording), label)

    for name in names:
        if name == "pixel":
            attempt(name, lambda: pixel_rdms(at_hand(), preprocess(), metric))
        elif name == "category":
            attempt(name, lambda: category_rdms([str(i) for i in recording["stimulus"].values], metadata()))
        else:
            attempt(name, lambda f=(name == "feedforward"): untrained(f))
    return out, notes


def score(controls: dict[str, xr.DataArray], targets, method: str = "spearman", n_boot: int = 0, seed: int = 0,
          level: float = 0.95):
    """Tidy scores of every control against every target: single RDMs (pixels, categories) with their
    bootstrap interval, untrained twins per (state, time) as mean, sd, min and max over seeds."""
    import pandas as pd

    from .bootstrap import bootstrap_scores, percentile_ci
    from .rsa import rsa_scores

    rows = []
    for kind, rdm in controls.items():
        if "seed" in rdm.dims:
            for target in targets:
                per_seed = xr.concat([rsa_scores(rdm.sel(seed=s), target, method, ceiling=False)["score"]
                                      for s in rdm["seed"].values], "seed")
                stats = xr.Dataset({"score": per_seed.mean("seed"), "score_sd": per_seed.std("seed", ddof=1)
                                    if per_seed.sizes["seed"] > 1 else per_seed.mean("seed") * np.nan,
                                    "score_min": per_seed.min("seed"), "score_max": per_seed.max("seed")})
                table = stats.to_dataframe().reset_index()
                rows.append(table.assign(control=str(rdm.name or kind), target=str(target.name),
                                         n_seeds=per_seed.sizes["seed"]))
            continue
        stack = rdm.rename(control="state").expand_dims(time=[0], axis=1)
        for target in targets:
            scored = rsa_scores(stack, target, method, ceiling=False)
            table = pd.DataFrame({"control": [str(c) for c in rdm["control"].values], "target": str(target.name),
                                  "score": scored["score"].values[:, 0]})
            if n_boot:
                boot = bootstrap_scores(stack, [target], method, n_boot, seed, ceilings=False)
                low, high = percentile_ci(boot["score"].isel(target=0, time=0), level)
                table["score_ci_low"], table["score_ci_high"] = low.values, high.values
            rows.append(table)
    if not rows:
        return pd.DataFrame(columns=["control", "target", "score"])
    out = pd.concat(rows, ignore_index=True)
    if "time" in out:
        out["time"] = out["time"].astype("Int64")  # empty for single-RDM controls
    return out
