"""Time-specific batch-norm statistics over time (the paper's Fig. 5B) and per-channel decay fits.

    python -m analyses.tsbn_decay [--model NAME_OR_PATH ...] [--recalibrate N [--until T] [--augment-calibration]]
        [--min-steps 4] [--r2-threshold 0.9] [--ms-per-step 20 50] [--out-dir results]
    python -m analyses.tsbn_decay --refit results/tsbn_decay.csv [--min-steps 5 ...]   # fits only

Writes three tidy CSVs (each to a temporary name, then renamed):

* ``tsbn_decay.csv``: one row per (model, transition, BN position, channel, step) with the running mean
  and variance, for the steps at which that transition ran while its statistics were estimated
  (``estimated_by``: ``training``; with ``--recalibrate N`` also every step up to ``--until`` - 1
  re-estimated from N training images, ``recalibration``).
* ``tsbn_decay_fits.csv``: one row per (model, estimated_by, transition, BN position, channel,
  statistic): the fitted constants, goodness of fit and a status.
* ``tsbn_decay_summary.csv``: per (model, estimated_by, transition kind, statistic): medians and
  interquartile ranges of the constants, counts per status and the fraction of channels well fit.

The fitted form is an exponential approach to an asymptote,

    y(t) = asymptote + amplitude * exp(-(t - t0) / tau),    t0 = the channel's first step,

chosen because the paper reads Fig. 5B as "a simple decay" and the simplest system that decays is a
first-order one (a leaky integrator, x(t+1) = x(t) + (a - x(t)) / tau'), whose trajectory is exactly
this curve sampled at integer steps. Its three constants answer the figure's questions directly: where
the statistic settles (asymptote), how far from there it starts (amplitude = y(t0) - asymptote; > 0
decays from above, < 0 rises from below) and how fast (tau, in steps and, through
``visrecur.timing.TimeMapping``, in ms as a low-high range). Measuring from t0 keeps the amplitude the
value at the first step rather than an extrapolation to t = 0.

A fit needs ``--min-steps`` steps (default and least 4: three constants plus at least one residual
degree of freedom, without which R^2 would be 1 by construction). A channel with fewer steps gets
status ``too_few_steps`` and no constants; one whose values do not change (range <= 1e-6 of their size)
``constant`` (asymptote = the value, amplitude 0, no tau). Otherwise tau is searched on a log grid from
0.1 steps to 100 x the channel's span of steps (for each tau the asymptote and amplitude are a linear
least-squares problem), then refined with ``scipy.optimize.curve_fit``; an optimum at either end of the
grid is ``jump`` (all the change between the first two steps, tau at 0.1 steps). A fit counts (status
``fit``) only when tau is at most the channel's span of steps, so that at least 1 - 1/e = 63% of the
approach happens within the steps seen; a longer tau is ``no_asymptote``: the values do not level off
over the steps seen (a straight line, a curve that speeds up, which no decay fits, or a decay too slow
to see), and the asymptote would be an extrapolation (a near-straight line is fitted with R^2 close to 1
by a very slow exponential, so R^2 alone does not show a decay). A fit that gives no finite answer is
``failed``. ``well_fit``:
status ``fit`` and R^2 >= ``--r2-threshold``. R^2 = 1 - SSE / SST over the channel's steps; RMSE =
sqrt(SSE / n), in the statistic's units. ``change`` = last value - first value.
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

import visrecur
from visrecur.artifacts.checkpoint import list_pretrained
from visrecur.errors import InputError, report_errors
from visrecur.timing import TimeMapping

STATISTICS = ("running_mean", "running_var")
MIN_STEPS = 4  # three constants + one residual degree of freedom
TAU_MIN = 0.1  # steps: exp(-10) of the amplitude is left one step later, i.e. a jump
TAU_MAX_SPANS = 100.0  # over the steps seen, exp(-1/100) is a straight line to 0.5%
CONSTANT_RTOL = 1e-6  # float32 statistics: differences below this are rounding
FIT_KEYS = ("transition", "kind", "bn_position", "channel")
STATUSES = ("fit", "jump", "no_asymptote", "too_few_steps", "constant", "failed")


def tsbn_statistics(model) -> pd.DataFrame:
    """Tidy table of every TSBN's running statistics at every step the transition runs."""
    rows = []
    for tr, position, t, means, variances in model.trained_statistics():
        for channel, (mean, var) in enumerate(zip(means.tolist(), variances.tolist())):
            rows.append({"transition": tr.key, "kind": model.spec.graph.kind(tr), "bn_position": position,
                         "channel": channel, "time": t, "running_mean": mean, "running_var": var})
    return pd.DataFrame(rows)


def decay_curve(t, asymptote, amplitude, tau, t0=0.0):
    """The fitted form: asymptote + amplitude * exp(-(t - t0) / tau)."""
    return asymptote + amplitude * np.exp(-(np.asarray(t, dtype=float) - t0) / tau)


def _linear_fit(t, y, taus):
    """For each tau, the least-squares asymptote and amplitude and the residual sum of squares."""
    e = np.exp(-(t[None, :] - t[0]) / taus[:, None])  # taus x steps
    e_c, y_c = e - e.mean(1, keepdims=True), y - y.mean()
    var = (e_c ** 2).sum(1)
    amplitude = np.divide((e_c * y_c).sum(1), var, out=np.zeros_like(var), where=var > 0)
    asymptote = y.mean() - amplitude * e.mean(1)
    sse = ((asymptote[:, None] + amplitude[:, None] * e - y) ** 2).sum(1)
    return asymptote, amplitude, sse


def fit_decay(steps, values, min_steps: int = MIN_STEPS) -> dict:
    """Fit ``decay_curve`` to one channel's statistic over its steps. Returns the constants (tau in
    steps, with its standard error from curve_fit's covariance), r2, rmse, n_steps and status
    (fit, jump, no_asymptote, too_few_steps, constant or failed); see the module docstring."""
    from scipy.optimize import curve_fit

    order = np.argsort(np.asarray(steps, dtype=float))
    t = np.asarray(steps, dtype=float)[order]
    y = np.asarray(values, dtype=float)[order]
    out = {"n_steps": len(t), "first_step": t[0] if len(t) else np.nan, "last_step": t[-1] if len(t) else np.nan,
           "asymptote": np.nan, "amplitude": np.nan, "tau_steps": np.nan, "tau_steps_se": np.nan,
           "r2": np.nan, "rmse": np.nan, "change": y[-1] - y[0] if len(t) else np.nan}
    if len(t) < min_steps:
        return {**out, "status": "too_few_steps"}
    if not np.all(np.isfinite(y)):
        return {**out, "status": "failed"}
    if np.ptp(y) <= CONSTANT_RTOL * max(1.0, np.abs(y).max()):
        return {**out, "asymptote": y.mean(), "amplitude": 0.0, "r2": np.nan,
                "rmse": float(np.sqrt(np.mean((y - y.mean()) ** 2))), "status": "constant"}
    span = t[-1] - t[0]
    low, high = TAU_MIN, TAU_MAX_SPANS * span
    taus = np.geomspace(low, high, 241)
    asymptote, amplitude, sse = _linear_fit(t, y, taus)
    best = int(np.argmin(sse))
    params = np.array([asymptote[best], amplitude[best], taus[best]])
    se = np.nan
    if 0 < best < len(taus) - 1:  # an interior optimum: refine it
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # OptimizeWarning on a covariance it cannot estimate
                refined, cov = curve_fit(lambda s, a, b, tau: decay_curve(s, a, b, tau, t[0]), t, y, p0=params,
                                         bounds=([-np.inf, -np.inf, low], [np.inf, np.inf, high]), maxfev=2000)
            if np.all(np.isfinite(refined)) and \
                    np.sum((decay_curve(t, *refined, t[0]) - y) ** 2) <= sse[best] * (1 + 1e-9) + 1e-300:
                params, se = refined, float(np.sqrt(cov[2, 2])) if np.isfinite(cov[2, 2]) else np.nan
        except (RuntimeError, ValueError):
            pass  # keep the grid's answer
    residual = decay_curve(t, *params, t[0]) - y
    if not np.all(np.isfinite(residual)):
        return {**out, "status": "failed"}
    sse_best, sst = float(np.sum(residual ** 2)), float(np.sum((y - y.mean()) ** 2))
    status = "jump" if params[2] <= low * 1.01 else "no_asymptote" if params[2] > span else "fit"
    return {**out, "asymptote": params[0], "amplitude": params[1], "tau_steps": params[2], "tau_steps_se": se,
            "r2": 1 - sse_best / sst, "rmse": float(np.sqrt(sse_best / len(t))), "status": status}


def fit_statistics(table: pd.DataFrame, mapping: TimeMapping | None = None, min_steps: int = MIN_STEPS,
                   r2_threshold: float = 0.9) -> pd.DataFrame:
    """One fit per channel and statistic of a ``tsbn_statistics`` table (extra grouping columns such as
    ``model`` and ``estimated_by`` are kept), with tau in ms (``mapping``, default 20-50 ms per step)."""
    _check_fit_options(min_steps, r2_threshold)
    mapping = mapping or TimeMapping()
    extra = [c for c in ("model", "estimated_by") if c in table.columns]
    keys = extra + list(FIT_KEYS)
    rows = []
    for key, channel in table.groupby(keys, sort=True):
        for statistic in STATISTICS:
            fit = fit_decay(channel.time.to_numpy(), channel[statistic].to_numpy(), min_steps)
            rows.append({**dict(zip(keys, key)), "statistic": statistic, **fit})
    fits = pd.DataFrame(rows)
    # tau as a duration: its steps are those of the transition's target state
    targets = fits.transition.str.split("->").str[-1]
    bounds = [mapping.latency(tau, state) for tau, state in zip(fits.tau_steps, targets)]
    onsets = [mapping.latency(0, state) for state in targets]
    fits["tau_min_ms"] = [float(b[0] - o[0]) for b, o in zip(bounds, onsets)]
    fits["tau_max_ms"] = [float(b[1] - o[1]) for b, o in zip(bounds, onsets)]
    fits["well_fit"] = (fits.status == "fit") & (fits.r2 >= r2_threshold)
    fits.attrs["time_mapping"] = mapping.describe()
    return fits


def _iqr(values: pd.Series) -> tuple[float, float, float]:
    values = values.dropna()
    if values.empty:
        return np.nan, np.nan, np.nan
    q1, median, q3 = np.percentile(values, [25, 50, 75])
    return median, q1, q3


def summarise_fits(fits: pd.DataFrame) -> pd.DataFrame:
    """Per transition kind and statistic (and model, estimated_by): channels per status, the fraction
    well fit among the channels a fit was tried on (status fit, jump or no_asymptote), and the median [25th,
    75th percentile] of tau (steps, ms), R^2, RMSE, asymptote and amplitude over the channels with
    status ``fit``, of which ``n_fit_decreasing`` decay from above (amplitude > 0)."""
    groups = [c for c in ("model", "estimated_by") if c in fits.columns] + ["kind", "statistic"]
    rows = []
    for key, part in fits.groupby(groups, sort=True):
        counts = part.status.value_counts()
        tried = int(sum(counts.get(status, 0) for status in ("fit", "jump", "no_asymptote")))
        fitted = part[part.status == "fit"]
        row = {**dict(zip(groups, key)), "n_channels": len(part),
               **{f"n_{status}": int(counts.get(status, 0))
                  for status in STATUSES},
               "median_steps_per_channel": float(part.n_steps.median()),
               "n_well_fit": int(part.well_fit.sum()),
               "n_fit_decreasing": int((fitted.amplitude > 0).sum()),  # decays from above, as in Fig. 5B
               "fraction_well_fit": part.well_fit.sum() / tried if tried else np.nan}
        for column in ("tau_steps", "tau_min_ms", "tau_max_ms", "r2", "rmse", "asymptote", "amplitude"):
            median, q1, q3 = _iqr(fitted[column])
            row.update({f"{column}_median": median, f"{column}_q25": q1, f"{column}_q75": q3})
        rows.append(row)
    return pd.DataFrame(rows)


def _check_fit_options(min_steps: int, r2_threshold: float) -> None:
    if min_steps < MIN_STEPS:
        raise InputError(f"min_steps={min_steps}: a fit of three constants needs at least {MIN_STEPS} steps "
                         f"(one left over to judge it); use --min-steps {MIN_STEPS} or more")
    if not 0 < r2_threshold <= 1:
        raise InputError(f"r2_threshold={r2_threshold} must be in (0, 1], e.g. 0.9")


def recalibrated_statistics(model, data_root: str, images: int, until: int,
                            augment: bool = False) -> tuple[pd.DataFrame, str]:
    """Every step's statistics up to ``until`` - 1 re-estimated, in time order and in evaluation mode,
    from ``images`` class-balanced training images (``FRNN.recalibrate``; trained steps too, so that
    the whole curve comes from one procedure; ``augment``: cropped and flipped as in training). Changes
    ``model``. Returns the statistics and what they were estimated on."""
    from analyses.common import calibration_batches
    from visrecur.errors import CheckpointError

    if model.preprocess is None:
        raise CheckpointError("the checkpoint does not say its preprocessing; give one written by "
                              "python -m visrecur.train")
    batches, described = calibration_batches(data_root, images, model.preprocess, augment)
    model.recalibrate(batches, until, steps=range(1, until + 1), progress=True)
    return tsbn_statistics(model), described


def _read_raw(path) -> pd.DataFrame:
    """A tsbn_decay.csv written before (files without model or estimated_by get one of each)."""
    if not Path(path).is_file():
        raise InputError(f"--refit {path}: no such file; write it with python -m analyses.tsbn_decay")
    raw = pd.read_csv(path)
    missing = {"transition", "kind", "bn_position", "channel", "time", *STATISTICS} - set(raw.columns)
    if missing:
        raise InputError(f"--refit {path} has no column(s) {sorted(missing)}; give a tsbn_decay.csv written by "
                         "python -m analyses.tsbn_decay")
    return raw.assign(model=raw.get("model", str(path)), estimated_by=raw.get("estimated_by", "training"))


def _statistics(args) -> pd.DataFrame:
    """The raw table of every checkpoint asked for, trained and (with --recalibrate) re-estimated."""
    from visrecur.artifacts.checkpoint import list_pretrained

    names = args.checkpoint or list_pretrained()
    tables = []
    for name in names:
        model = visrecur.load(name)
        table = tsbn_statistics(model).assign(model=name, estimated_by="training")
        if table.empty and not args.recalibrate:
            raise InputError(f"{name}: no transition has TSBN statistics estimated from data (an untrained "
                             "model); give a trained checkpoint or --recalibrate N")
        tables.append(table)
        if args.recalibrate:
            until = args.until or model.spec.time_steps
            table, described = recalibrated_statistics(model, args.data_root, args.recalibrate, until,
                                                       args.augment_calibration)
            tables.append(table.assign(model=name, estimated_by=f"recalibration on {described}"))
    return pd.concat(tables, ignore_index=True)


@report_errors
def main(argv=None):
    from analyses import common

    p = common.parser(__doc__, "tsbn_decay")
    p.add_argument("--model", "--checkpoint", dest="checkpoint", nargs="+", metavar="NAME_OR_PATH",
                   help="checkpoint paths or shipped model names (default: every shipped pretrained model: "
                        f"{' '.join(list_pretrained())})")
    p.add_argument("--recalibrate", type=int, metavar="N",
                   help="also re-estimate every step's statistics up to --until - 1 from N training images")
    p.add_argument("--until", type=int, metavar="T", help="with --recalibrate: the readout time to recalibrate "
                                                          "up to (default: the model's time_steps)")
    p.add_argument("--augment-calibration", action="store_true", help=common.AUGMENT_HELP)
    common.add_data(p, limit=False)
    p.add_argument("--min-steps", type=int, default=MIN_STEPS, help="fewest steps a channel is fitted on (>= 4)")
    p.add_argument("--r2-threshold", type=float, default=0.9, help="R^2 from which a fit counts as good, in (0, 1]")
    common.add_time_mapping_options(p)
    p.add_argument("--refit", metavar="CSV", help="fit an existing tsbn_decay.csv (e.g. with another --min-steps) "
                                                  "instead of reading checkpoints")
    common.add_output(p)
    args = p.parse_args(argv)
    _check_fit_options(args.min_steps, args.r2_threshold)
    if args.refit and (args.checkpoint or args.recalibrate is not None):
        p.error("--refit fits a table already written; drop --model and --recalibrate")
    if args.recalibrate is not None and args.recalibrate < 1:
        p.error(f"--recalibrate {args.recalibrate} must be at least 1 image")
    common.requires(p, args, "augment_calibration", "recalibrate", "how recalibration draws its images")
    common.requires(p, args, "until", "recalibrate", "how far --recalibrate goes")
    if args.until is not None and args.until < 2:
        p.error(f"--until {args.until}: transitions run from step 1, so recalibrate up to a readout time >= 2")
    common.check_applies(args.checkpoint or [], "tsbn_decay")
    out = common.output_folder(args.out_dir)
    stated = None if args.refit else _stated_mapping(args.checkpoint or list_pretrained())
    mapping = common.time_mapping(args, p, stated)
    raw = _read_raw(args.refit) if args.refit else _statistics(args)
    raw = raw[["model", "estimated_by"] + [c for c in raw.columns if c not in ("model", "estimated_by")]]
    fits = fit_statistics(raw, mapping, args.min_steps, args.r2_threshold)
    summary = summarise_fits(fits)
    tables = {"tsbn_decay_fits": fits, "tsbn_decay_summary": summary}
    if not args.refit:
        tables = {"tsbn_decay": raw, **tables}
    common.write(tables, out, common.command_line("tsbn_decay", argv),
                 {"tsbn_decay.csv": "TSBN running statistics per transition, position, channel and step",
                  "tsbn_decay_fits.csv": "exponential decay fit per channel and statistic",
                  "tsbn_decay_summary.csv": "fits summarised per transition kind and statistic"},
                 {"time_mapping": mapping.to_dict()})
    shown = ["model", "estimated_by", "kind", "statistic", "n_channels", "n_fit", "n_no_asymptote", "n_too_few_steps",
             "fraction_well_fit", "tau_steps_median", "r2_median"]
    print(summary[shown].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"{len(raw)} rows, {len(fits)} fits -> {out}/tsbn_decay*.csv (tau in ms: {mapping.describe()})")


def _stated_mapping(names):
    """The time mapping the models' checkpoints state (one for all; None when none states one)."""
    from visrecur.artifacts.checkpoint import read

    stated = {read(name).stated_time_mapping for name in names} - {None}
    if len(stated) > 1:
        raise InputError("the models state different time mappings; analyse them one at a time")
    return next(iter(stated), None)


if __name__ == "__main__":
    sys.exit(main())
