"""``score(model, benchmark)`` for the offline benchmarks (and Brain-Score's public ones where S3 is
reachable), and the ``score`` command, which can write its scores as a result table
(``visrecur.artifacts.results``): the numbers docs/brainscore.md shows come from that file.

The Cichy et al. (2014) benchmarks come twice: with the 92 images at the experiment's 2.9 degrees
(placed on a grey screen of the model's visual degrees by Brain-Score's ``place_on_screen``), and
filling the model's field, as visrecur's own 92-image analyses show them."""
from __future__ import annotations

from visrecur.errors import InputError, VisrecurError
from .environment import BRAINSCORE_VERSION, require

OFFLINE = {
    "visrecur.Cichy2014fmri.EVC-2.9deg-rdm": lambda: _cichy("EVC", 2.9),
    "visrecur.Cichy2014fmri.IT-2.9deg-rdm": lambda: _cichy("IT", 2.9),
    "visrecur.Cichy2014fmri.EVC-rdm": lambda: _cichy("EVC"),
    "visrecur.Cichy2014fmri.IT-rdm": lambda: _cichy("IT"),
    "visrecur.PlantedLatency70ms.IT-rdm": lambda: _planted(),
}


class BenchmarkUnavailable(VisrecurError):
    """A public Brain-Score benchmark whose data cannot be fetched here."""


def _cichy(region, visual_degrees=None):
    from .benchmarks import Cichy2014RSA

    return Cichy2014RSA(region, visual_degrees=visual_degrees)


def _planted():
    from .temporal import default_benchmark

    return default_benchmark()


def load_benchmark(identifier: str):
    """An offline benchmark by identifier (``OFFLINE``), else Brain-Score's ``load_benchmark``; a public
    benchmark whose data live on S3 is refused in one line where S3 cannot be reached."""
    if identifier in OFFLINE:
        return OFFLINE[identifier]()
    brainscore_vision = require()
    try:
        return brainscore_vision.load_benchmark(identifier)
    except AssertionError as err:
        if "No registrations found" in str(err):
            raise InputError(f"benchmark {identifier!r} is neither offline ({', '.join(OFFLINE)}) nor registered "
                             "in Brain-Score") from None
        raise
    except Exception as err:  # botocore raises its errors bare, or a list of them wrapped in Exception
        text = f"{type(err).__name__}: {err}"
        if any(word in text for word in ("NoCredentialsError", "EndpointConnectionError", "Could not connect",
                                          "Unable to locate credentials")):
            raise BenchmarkUnavailable(
                f"Brain-Score's benchmark {identifier!r} fetches its data from Amazon S3, which cannot be reached here "
                "(NoCredentialsError/EndpointConnectionError); run it unchanged where the network reaches S3, or use "
                f"an offline benchmark: {', '.join(OFFLINE)}") from None
        raise


def score(model, benchmark):
    """Score ``model`` (a BrainModel, or anything ``VisrecurBrainModel`` takes) on ``benchmark`` (a
    Brain-Score Benchmark or an identifier) with Brain-Score's ``score_benchmark``."""
    require()
    from brainscore_core.benchmarks import score_benchmark
    from brainscore_vision.model_interface import BrainModel

    from .model import VisrecurBrainModel

    model = model if isinstance(model, BrainModel) else VisrecurBrainModel(model)
    benchmark = load_benchmark(benchmark) if isinstance(benchmark, str) else benchmark
    return score_benchmark(benchmark, model)


def score_command(args, options: dict, command: str = "") -> int:
    """Score every model on every benchmark; print one line each, and with ``--output`` write the table."""
    import warnings

    import pandas as pd

    from visrecur.artifacts.results import write_table

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    names = list(OFFLINE) if args.benchmark == ["all"] else list(args.benchmark)
    if args.output is not None and not str(args.output).endswith(".csv"):
        raise InputError(f"--output {args.output!r}: a result table is a CSV file; give a name ending in .csv")
    require()
    from .model import PastTrainedWarning, UnreachedStateWarning, VisrecurBrainModel

    models = [VisrecurBrainModel(name, batch_size=args.batch_size, progress=not args.no_progress, **options)
              for name in args.model]  # every model checked before the first score
    benchmarks = {name: load_benchmark(name) for name in names}
    rows = []
    for model in models:
        print(f"{model.identifier}: {model.time_mapping.describe()}; images {model.image_fit}")
        for name, benchmark in benchmarks.items():
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UnreachedStateWarning)
                warnings.simplefilter("always", PastTrainedWarning)
                result = score(model, benchmark)
            row = score_row(model, name, benchmark, result)
            rows.append(row)
            line = f"{name}: score {row['score']:.4f}"
            if row["raw"] == row["raw"]:  # not NaN
                ceiling = f", ceiling {row['ceiling']:.4f}" if row["ceiling"] == row["ceiling"] else ""
                line += f" (raw {row['raw']:.4f}{ceiling})"
            if row["per_bin"]:
                line += f" per bin {row['per_bin']}"
            print(line)
            for warning in caught:
                if issubclass(warning.category, (UnreachedStateWarning, PastTrainedWarning)):
                    print(f"  note: {warning.message}")
    if args.output is not None:
        path = write_table(pd.DataFrame(rows), args.output, command=command, option="--output", description=(
            "Offline Brain-Score scores (brainscore-vision's own benchmark classes, metrics and ceilings): "
            "score = raw / ceiling; the Cichy 2014 fMRI RDMs with the 92 images at the experiment's 2.9 degrees "
            "and filling the model's field; the planted-latency benchmark on synthetic data"),
            units={"stimulus_degrees": "degrees of visual angle", "model_degrees": "degrees of visual angle"},
            provenance={"brainscore_vision": BRAINSCORE_VERSION})
        print(f"wrote {path}")
    return 0


def score_row(model, name: str, benchmark, result) -> dict:
    """One row of the score table."""
    nan = float("nan")
    raw, ceiling = result.attrs.get("raw"), result.attrs.get("ceiling")
    degrees = getattr(benchmark, "_visual_degrees", None)
    filled = getattr(benchmark, "_fill_field", False)
    return {"model": model.identifier, "benchmark": name, "region": getattr(benchmark, "region", ""),
            "stimuli": "fill the field" if filled else (f"{degrees:g} degrees" if degrees else ""),
            "stimulus_degrees": float(model.visual_degrees()) if filled else (float(degrees) if degrees else nan),
            "model_degrees": float(model.visual_degrees()), "score": float(result),
            "raw": nan if raw is None else float(raw), "ceiling": nan if ceiling is None else float(ceiling),
            "per_bin": " ".join(f"{v:.3f}" for v in result.attrs.get("per_bin", [])),
            "time_mapping": model.time_mapping.describe(), "image_fit": model.image_fit,
            "readout_time": int(model.readout_time)}
