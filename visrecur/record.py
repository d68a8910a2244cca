"""``python -m visrecur.record``: record every state of a model at every time step (the command line of
``visrecur.recording.record``). The module itself is callable, so ``visrecur.record(model, stimuli, ...)``
is the function: ``import visrecur.record`` makes the name a module, and a module cannot otherwise be
called."""
from __future__ import annotations

import sys
import types
from pathlib import Path

from visrecur.artifacts.checkpoint import DEFAULT_PRETRAINED, list_pretrained
from visrecur.artifacts.models import load_model
from visrecur.artifacts.stores import STORES
from visrecur.artifacts.recordings import UNTRAINED_WARNING, open_recording, summary
from visrecur.distributed import parse_device, setup_distributed
from visrecur.cli import ArgumentParser, add_time_mapping, given_time_mapping
from visrecur.errors import InputError, report_errors
from visrecur.recording import record
from visrecur.recording.images import set_max_image_pixels
from visrecur.recording.reductions import METHODS, Reduction
from visrecur.recording.stimuli import resolve
from visrecur.timed.reference import list_reference


# --- command line ----------------------------------------------------------------------------------
def parse_args(argv=None):
    p = ArgumentParser(
        prog="python -m visrecur.record",
        description="Record every state of a recurrent model at every time step into an xarray dataset. "
                    "With no arguments: the pretrained default model (4-state FRNN V1-V2-V4-IT, CIFAR-10) on "
                    "the built-in stimuli, into recordings/<model>_<stimuli>.nc.",
        epilog="examples:\n"
               "  python -m visrecur.record\n"
               "  python -m visrecur.record --stimuli 92images --reduction mean\n"
               "  python -m visrecur.record --model runs/x/checkpoint.pt --stimuli photos/ --states V4 IT \\\n"
               "      --times 0 1 2 3 4 5 6 7 --output rec.zarr\n"
               "  python -m visrecur.record --output rec.zarr --resume      # after an interruption\n"
               "  python -m visrecur.record --model cornet_s --stimuli 92images --reduction mean\n"
               "read it back: visrecur.artifacts.recordings.open_recording(path) (lazy xarray.Dataset)")
    p.add_argument("--model", help="checkpoint (.pt), shipped pretrained model (" + ", ".join(list_pretrained())
                   + "), zoo model name (untrained!) or reference time-resolved architecture (" + ", ".join(
                       list_reference()) + "; untrained, docs/timed_models.md); default: the shipped "
                   + DEFAULT_PRETRAINED)
    p.add_argument("--stimuli", nargs="+", default=["builtin"],
                   help="builtin | 92images[:file.mat] | cifar10-test[:root] | folder | array.npy | list.txt | "
                        "image files")
    p.add_argument("--limit", type=int, help="record only the first N stimuli (cifar10-test: a class-balanced "
                                             "N, the first images of each class)")
    p.add_argument("--states", nargs="+", help="states to record (default: all)")
    p.add_argument("--times", nargs="+", type=int,
                   help="state time steps (default 0..T-1, the steps a readout at T is computed from)")
    p.add_argument("--readout-time", type=int, help="readout time T; logits are recorded at every readout "
                                                       "time up to T (default: the model's)")
    p.add_argument("--max-steps", type=int, metavar="N",
                   help="raise the most model steps a recording may run (default: the model's, 1000 unless it "
                        "says otherwise; docs/data_integrity.md)")
    p.add_argument("--reduction", default="none", help=" | ".join(
        f"{m}:{'K' if m == 'pool' else 'D'}" if c.takes_size else m for m, c in METHODS.items()))
    p.add_argument("--pca-fit", nargs="+", help="stimuli to fit the PCA on (default: the recorded ones)")
    p.add_argument("--max-image-pixels", type=int, metavar="N",
                   help="refuse images of more pixels than N, a guard against decompression bombs (default: "
                        "$VISRECUR_MAX_IMAGE_PIXELS, else PIL's 89478485)")
    p.add_argument("--seed", type=int, help="seed of the random projection (srp) and the PCA (pca) (default: 0)")
    p.add_argument("--batch-size", type=int, default=64, help="stimuli per batch")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--workers", type=int, help="processes that decode and preprocess the next batches while "
                                               "the model runs (default: 0 on a CPU, up to 8 with CUDA)")
    p.add_argument("--output", help="output .nc or .zarr (default recordings/<model>_<stimuli>.nc)")
    p.add_argument("--format", choices=[suffix.lstrip(".") for suffix in STORES],
                   help="the output's format when --output is not given (default: nc; with --output its suffix "
                        "says it)")
    add_time_mapping(p, "model")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing recording (or unfinished one) at the output; anything else there is "
                        "never replaced")
    p.add_argument("--resume", action="store_true", help="continue an interrupted recording")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    args.time_mapping = given_time_mapping(args, p)
    if args.limit is not None and args.limit < 1:
        p.error(f"--limit {args.limit} must be at least 1")
    if args.batch_size < 1:
        p.error(f"--batch-size {args.batch_size} must be at least 1")
    if args.max_steps is not None and args.max_steps < 1:
        p.error(f"--max-steps {args.max_steps} must be at least 1")
    if args.output is not None and not args.output.strip():
        p.error("--output '' is empty; give a file name ending in .nc or .zarr, or leave --output out")
    if args.output is not None and args.format is not None and not args.output.endswith(f".{args.format}"):
        p.error(f"--format {args.format} disagrees with --output {args.output}; the output's suffix says its format: "
                f"drop --format or name the output *.{args.format}")
    if args.seed is not None and not any(args.reduction.startswith(m) for m in ("srp", "pca")):
        p.error(f"--seed {args.seed} seeds only the random projection and the PCA (--reduction srp:D or pca:D); "
                f"--reduction {args.reduction} draws nothing at random: drop --seed")
    if args.max_image_pixels is not None and args.max_image_pixels < 1:
        p.error(f"--max-image-pixels {args.max_image_pixels} must be at least 1")
    if args.workers is not None and args.workers < 0:
        p.error(f"--workers {args.workers} must be at least 0 (0: load in the main process)")
    return args


@report_errors(interrupted="interrupted; continue with the same command and --resume")
def main(argv=None) -> int:
    args = parse_args(argv)
    parse_device(args.device)
    if args.readout_time is not None and args.readout_time < 1:
        raise InputError(f"--readout-time {args.readout_time}: readout times start at 1")
    if args.max_image_pixels is not None:
        set_max_image_pixels(args.max_image_pixels)
    reduction = Reduction.parse(args.reduction, 0 if args.seed is None else args.seed)
    source = load_model(args.model)
    stimuli = resolve(args.stimuli, args.limit)
    pca_fit = resolve(args.pca_fit) if args.pca_fit else None
    output = Path(args.output or f"recordings/{source.name}_{stimuli.name}.{args.format or 'nc'}")
    if not source.trained:
        print(f"WARNING: {UNTRAINED_WARNING}", file=sys.stderr)
    path = record(source, stimuli, output, states=args.states, times=args.times,
                  readout_time=args.readout_time, reduction=reduction, batch_size=args.batch_size,
                  device=args.device, overwrite=args.overwrite, resume=args.resume,
                  ms_per_step=args.time_mapping, pca_fit=pca_fit, progress=not args.no_progress,
                  workers=args.workers, max_steps=args.max_steps)
    if setup_distributed("cpu")[0] == 0:
        with open_recording(path) as ds:
            print(summary(path, ds))
    return 0


class _CallableModule(types.ModuleType):
    """``visrecur.record(...)`` calls ``visrecur.recording.record`` (the same signature and checks)."""

    def __call__(self, *args, **kwargs):
        return record(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
