"""``score(model, benchmark)`` for the offline benchmarks (and Brain-Score's public ones where S3 is
reachable), and the ``score`` command."""
from __future__ import annotations

from visrecur.errors import InputError, VisrecurError
from .environment import require

OFFLINE = {
    "visrecur.Cichy2014fmri.EVC-rdm": lambda: _cichy("EVC"),
    "visrecur.Cichy2014fmri.IT-rdm": lambda: _cichy("IT"),
    "visrecur.PlantedLatency70ms.IT-rdm": lambda: _planted(),
}


class BenchmarkUnavailable(VisrecurError):
    """A public Brain-Score benchmark whose data cannot be fetched here."""


def _cichy(region):
    from .benchmarks import Cichy2014RSA

    return Cichy2014RSA(region)


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


def score_command(args, mapping, regions) -> int:
    import warnings

    if args.batch_size < 1:
        raise InputError(f"--batch-size {args.batch_size} must be at least 1")
    names = list(OFFLINE) if args.benchmark == "all" else [args.benchmark]
    require()
    from .model import UnreachedStateWarning, VisrecurBrainModel

    model = VisrecurBrainModel(args.model, time_mapping=mapping, region_states=regions, batch_size=args.batch_size,
                               progress=not args.no_progress)
    print(f"{model.identifier}: time bins {mapping.step_ms:g} ms per step from {mapping.onset_ms:g} ms "
          f"({mapping.describe()})")
    for name in names:
        benchmark = load_benchmark(name)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnreachedStateWarning)
            result = score(model, benchmark)
        raw = result.attrs.get("raw")
        ceiling = result.attrs.get("ceiling")
        line = f"{name}: score {float(result):.4f}"
        if raw is not None:
            line += f" (raw {float(raw):.4f}"
            line += f", ceiling {float(ceiling):.4f})" if ceiling is not None else ")"
        if "per_bin" in result.attrs:
            line += " per bin " + " ".join(f"{v:.3f}" for v in result.attrs["per_bin"])
        print(line)
        for warning in caught:
            if issubclass(warning.category, UnreachedStateWarning):
                print(f"  note: {warning.message}")
    return 0
