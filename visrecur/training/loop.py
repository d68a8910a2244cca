"""Train a model: ``python -m visrecur.train --model frnn_4state_shared --data-root DIR``.

Reads top to bottom: config -> data -> model -> optimiser -> epochs (train, validate, checkpoint).
The configuration and its command line are in config.py (``TrainConfig``). The learning rate of every
epoch is ``lr_at(cfg, epoch)``, set at the start of the epoch; there is no other lr mechanism.
Several GPUs or machines: launch the same command with ``torchrun --nproc_per_node N -m visrecur.train``.
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import random
import time
from pathlib import Path

import numpy as np
import torch


from visrecur.training import data

from visrecur.architecture import zoo
from visrecur.artifacts.checkpoint import Checkpoint, load_state
from visrecur.nn.blocks import compile_regions
from visrecur.training.config import (PRESETS, RESUME_MUST_MATCH, TrainConfig, TrainingError, build_config,  # noqa: F401
                     build_parser, lr_at, parse_args)
from visrecur.distributed import parse_device, setup_distributed, shutdown
from visrecur.training.evaluate import evaluate
from contextlib import nullcontext

from visrecur.artifacts.io import check_replaceable, exclusive, writable_ancestor, write_atomically
from visrecur.errors import VisrecurError
from visrecur.nn.model import FRNN
from visrecur.recording.preprocess import Preprocess
from visrecur.training.step import EpochTotals, TrainStep


def pick_device(requested: str, local_rank: int) -> str:
    """cpu, cuda, cuda:N or auto -> a torch device (``distributed.parse_device``, shared with recording)."""
    return parse_device(requested, local_rank)


# --- data -----------------------------------------------------------------------------------------
def training_preprocess(cfg: TrainConfig, spec) -> Preprocess:
    """The preprocessing the trained weights expect (saved in the checkpoint): at the model's input size
    with the recipe's statistics; the imagenet recipe resizes the shorter side to 256/224 of it first."""
    size = tuple(spec.input_size)
    resize = int(min(size) * 256 / 224) if cfg.augment == "imagenet" else None
    return Preprocess(size, cfg.mean, cfg.std, resize)


def data_device(cfg: TrainConfig, device: str) -> str | None:
    """Where the training batches are made: ``device`` when the decoded images stay there
    (``--data-on-device``; by default for CUDA with in-memory data), else None (on the CPU, copied per batch)."""
    if cfg.augment == "imagenet":
        if cfg.data_on_device:
            raise TrainingError("--data-on-device keeps decoded same-size images in memory (the cifar "
                                "augmentation); the imagenet recipe streams images from disk: drop "
                                "--data-on-device")
        return None
    wanted = device.startswith("cuda") if cfg.data_on_device is None else cfg.data_on_device
    if cfg.data_on_device and device == "cpu":
        import warnings

        warnings.warn("--data-on-device has no effect on the CPU: the decoded images are in CPU memory already",
                      UserWarning, stacklevel=2)
    return device if wanted and device != "cpu" else None


def make_data(cfg: TrainConfig, preprocess: Preprocess, rank: int, world: int, on_device: str | None = None):
    """(train batches, validation batches, class names); each has .batches(epoch) or is a loader.
    ``on_device``: keep in-memory images on this device (``data_device``)."""
    if cfg.augment == "imagenet":
        train_dir, val_dir = data.find_split(cfg.data_root, "train"), data.find_split(cfg.data_root, "val")
        size = preprocess.crop_size[0]
        train = data.imagenet_loader(train_dir, cfg.batch_size, True, cfg.workers, cfg.seed, rank, world, size,
                                     preprocess)
        val = data.imagenet_loader(val_dir, cfg.batch_size, False, cfg.workers, cfg.seed, rank, world, size,
                                   preprocess)
        return train, val, train.dataset.classes
    if cfg.dataset == "cifar10":
        x_train, y_train, classes = data.load_cifar10_pickles(cfg.data_root, True, cfg.download)
        x_val, y_val, _ = data.load_cifar10_pickles(cfg.data_root, False, cfg.download)
        x_train, y_train = data.balanced_subset(x_train, y_train, cfg.limit_train, cfg.seed)
        x_val, y_val = data.balanced_subset(x_val, y_val, cfg.limit_val, cfg.seed)
    elif cfg.dataset == "folder":
        show = cfg.progress and rank == 0
        x_train, y_train, classes = data.decode_folder(data.find_split(cfg.data_root, "train"),
                                                       cfg.limit_train, cfg.seed, show)
        x_val, y_val, _ = data.decode_folder(data.find_split(cfg.data_root, "val"), cfg.limit_val,
                                             cfg.seed, show)
    else:
        raise TrainingError(f"unknown dataset {cfg.dataset!r}; use 'folder' (ImageFolder) or 'cifar10'")
    mean, std = preprocess.mean, preprocess.std
    try:
        train = data.TensorBatches(x_train, y_train, cfg.batch_size, mean, std, True, cfg.seed, rank, world,
                                   drop_last=world > 1, device=on_device)
        val = data.TensorBatches(x_val, y_val, cfg.batch_size, mean, std, False, cfg.seed, rank, world,
                                 device=on_device)
    except torch.cuda.OutOfMemoryError:
        size = (x_train.numel() + x_val.numel()) / 1e6
        raise TrainingError(f"the decoded images ({size:.0f} MB) do not fit on {on_device} beside the model; "
                            "train with --no-data-on-device (batches are then made on the CPU)") from None
    return train, val, classes


# --- the loop -------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    """Run (or resume) a training; returns the last checkpoint written (rank 0; None on other ranks or when
    no epoch was left to run)."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    pick_device(cfg.device, 0)  # a device word that cannot work is refused before anything starts
    rank, world, local_rank = setup_distributed(cfg.device if cfg.device != "auto" else
                                                ("cuda" if torch.cuda.is_available() else "cpu"))
    device = pick_device(cfg.device, local_rank)
    _check_options(cfg, device, world)
    on_device = data_device(cfg, device)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    use_bf16 = device.startswith("cuda") if cfg.bf16 is None else cfg.bf16
    out = Path(cfg.out or f"runs/{cfg.model}")
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.csv"
    if cfg.dataset == "folder" or cfg.augment == "imagenet":
        data.find_split(cfg.data_root, "train")  # a wrong --data-root is refused before OUT is made
    if rank == 0:
        _check_writable(out)
    # one training per OUT: rank 0 holds the checkpoint's lock from the checks to the last epoch
    with exclusive(ckpt_path, "--out") if rank == 0 else nullcontext():
        if rank == 0:
            _check_output(out, ckpt_path, metrics_path, cfg)  # OUT itself is made only when training starts
        return _train(cfg, rank, world, local_rank, device, on_device, use_bf16, out, ckpt_path, metrics_path)


def _train(cfg, rank, world, local_rank, device, on_device, use_bf16, out, ckpt_path, metrics_path):
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    elif device.startswith("cuda"):
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    spec = zoo.spec(cfg.model, **cfg.model_overrides)
    loss_times = sorted(cfg.loss_readout_times) or [spec.readout_time]
    if min(loss_times) < spec.graph.earliest_readout:
        raise TrainingError(f"--loss-readout-times {' '.join(map(str, loss_times))}: {cfg.model} can read out "
                            f"from t={spec.graph.earliest_readout} on; give readout times >= "
                            f"{spec.graph.earliest_readout}")
    if max(loss_times) > spec.time_steps:
        if rank == 0:
            print(f"the model is built for readout times up to {spec.time_steps}; --loss-readout-times "
                  f"{' '.join(map(str, loss_times))} extends its time_steps to {max(loss_times)}", flush=True)
        spec = zoo.spec(cfg.model, **{**cfg.model_overrides, "time_steps": max(loss_times)})
    eval_times = sorted(cfg.eval_readout_times) or list(range(spec.graph.earliest_readout, spec.time_steps + 1))
    model = FRNN(spec).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr_at(cfg, 0), momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    start_epoch, history = 0, []
    if cfg.resume:
        start_epoch, history, extended_from = _resume(ckpt_path, model, optimizer, cfg, device)
        if rank == 0:
            extended = (f"; the run is extended from {extended_from} to {cfg.epochs} epochs"
                        if extended_from else "")
            print(f"resuming {ckpt_path} after epoch {start_epoch}{extended}", flush=True)
    preprocess = training_preprocess(cfg, spec)
    train_data, val_data, classes = make_data(cfg, preprocess, rank, world, on_device)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.startswith("cuda") else None, find_unused_parameters=True)
    if cfg.compile_regions:
        compile_regions(model)
    forward = _compiled(net) if cfg.compile else net
    track = sorted(set(loss_times) | {t for t in eval_times if t <= max(loss_times)})
    totals = EpochTotals(track, device)
    step = TrainStep(forward, optimizer, loss_times, totals, device, use_bf16, cfg.channels_last,
                     graphs=cfg.cuda_graphs)
    if rank == 0:
        _prepare_output(out)

    payload, batches_seen = None, [0]
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        try:
            train_stats = _train_epoch(step, net, train_data, optimizer, epoch, cfg, rank, batches_seen)
        except Exception as err:  # torch.compile compiles at the first batch: its failure in one line
            flag = "--compile" if cfg.compile else "--compile-regions" if cfg.compile_regions else None
            if flag and type(err).__module__.startswith(("torch._dynamo", "torch._inductor")):
                raise TrainingError(f"{flag} failed ({type(err).__name__}: {str(err).strip().splitlines()[0]}); "
                                    f"drop {flag} (checkpoints of finished epochs are kept)") from None
            raise
        val_err = evaluate(model, val_data, eval_times, device, use_bf16, cfg.channels_last)
        seconds = time.time() - t0
        row = {"epoch": epoch + 1, "lr": lr_at(cfg, epoch), **train_stats,
               **{f"val_err_t{t}": e for t, e in val_err.items()},
               "seconds": round(seconds, 1), "images_per_s": round(train_stats["train_images"] / seconds, 1)}
        history.append(row)
        if rank == 0:
            payload = _checkpoint(model, optimizer, cfg, spec, preprocess, history, classes, epoch + 1)
            payload.write(ckpt_path)
            _write_metrics(metrics_path, history)
            best = min(val_err, key=val_err.get)
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.3f}  val error "
                  + " ".join(f"t{t}:{100 * e:.1f}%" for t, e in val_err.items())
                  + f"  (best t{best})  {row['images_per_s']:.0f} img/s", flush=True)
    shutdown(world)
    return payload


def _check_options(cfg: TrainConfig, device: str, world: int) -> None:
    """Refuse option combinations that cannot work, before any data is loaded or file made."""
    if cfg.cuda_graphs:
        if not device.startswith("cuda"):
            raise TrainingError(f"--cuda-graphs needs a CUDA device, not {device}; drop --cuda-graphs or "
                                "train with --device cuda")
        if world > 1:
            raise TrainingError("--cuda-graphs captures one process's step; with several processes (torchrun) "
                                "drop --cuda-graphs")
        if cfg.compile:
            raise TrainingError("--cuda-graphs and --compile capture the step in two ways; choose one")
    if cfg.compile and cfg.compile_regions:
        raise TrainingError("--compile and --compile-regions compile the model in two ways; choose one")
    for flag, on in (("--compile", cfg.compile), ("--compile-regions", cfg.compile_regions)):
        if on:
            try:
                import torch._dynamo  # noqa: F401
            except ImportError as err:
                raise TrainingError(f"{flag}: torch's compiler cannot be loaded here ({err}); drop {flag}") \
                    from None


def _compiled(net):
    try:
        return torch.compile(net)
    except RuntimeError as err:  # e.g. a Python version the compiler does not support yet
        raise TrainingError(f"--compile: {str(err).strip().splitlines()[0]}; drop --compile") from None


def is_checkpoint(path: Path) -> bool:
    try:
        Checkpoint.read(path)
    except VisrecurError:
        return False
    return True


def is_metrics(path: Path) -> bool:
    """A metrics table a training wrote (its header starts with the epoch and learning-rate columns)."""
    if not path.is_file():
        return False
    with open(path, newline="") as f:
        return next(csv.reader(f), [])[:2] == ["epoch", "lr"]


def _check_output(out: Path, ckpt_path: Path, metrics_path: Path, cfg: TrainConfig) -> None:
    """Refuse what cannot work before any data is loaded, without creating anything. Only a checkpoint and
    metrics a training wrote are replaced (``io.check_replaceable``); other files in OUT are left alone."""
    if cfg.resume and not ckpt_path.is_file():
        raise TrainingError(f"nothing to resume: {str(ckpt_path)!r} does not exist; run without --resume to "
                            "start a new training (or with --overwrite to start again in OUT)")
    if not cfg.resume:  # a resume reads it first, and names what is wrong with it
        check_replaceable(ckpt_path, is_checkpoint, "checkpoint", True, "--out")  # reads it once
        if ckpt_path.exists() and not cfg.overwrite:  # a checkpoint, by now
            raise TrainingError(f"{str(ckpt_path)!r} already exists; pass --resume to continue it or --overwrite "
                                "to start again (the old checkpoint is replaced only after the first epoch)")
    check_replaceable(metrics_path, is_metrics, "training metrics table", True, "--out")


def _check_writable(out: Path) -> None:
    existing, writable = writable_ancestor(out)
    if not writable or (out.exists() and not out.is_dir()):
        raise TrainingError(f"cannot write to output folder {str(out)!r} ({str(existing)!r} is not a writable "
                            "folder); choose another with --out")


def _prepare_output(out: Path) -> None:
    """Make OUT once training starts (``_check_output`` has refused what cannot work)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TrainingError(f"cannot write to output folder {str(out)!r} ({err.strerror}); choose another "
                            "with --out") from None


def _resume(path, model, optimizer, cfg, device):
    """Load the checkpoint's state into ``model`` and ``optimizer``; -> (epoch, metrics, epochs before an
    extension or 0). Any option that shapes the run must match (RESUME_MUST_MATCH)."""
    saved_checkpoint = Checkpoint.read(path, map_location=device)
    saved = dict(saved_checkpoint.config or {})
    for key in RESUME_MUST_MATCH:
        mine, theirs = _jsonable(getattr(cfg, key)), _jsonable(saved.get(key))
        if json.dumps(mine, sort_keys=True) != json.dumps(theirs, sort_keys=True):
            raise TrainingError(f"cannot resume {str(path)!r}: it was trained with {key}={theirs!r}, not "
                                f"{mine!r}; use the same options or a new --out")
    extended_from = 0
    if cfg.epochs != saved["epochs"]:
        if cfg.epochs < saved["epochs"] or cfg.lr_schedule == "logspace":
            reason = ("a logspace schedule depends on the number of epochs" if cfg.epochs > saved["epochs"]
                      else "only a larger --epochs extends a run")
            raise TrainingError(f"cannot resume {str(path)!r}: it was trained with epochs={saved['epochs']}, not "
                                f"{cfg.epochs} ({reason}); use --epochs {saved['epochs']} or a new --out")
        extended_from = saved["epochs"]
    load_state(model, saved_checkpoint.model, f"checkpoint {str(path)!r}")
    if saved_checkpoint.optimizer is None or saved_checkpoint.rng is None:
        raise TrainingError(f"cannot resume {str(path)!r}: it is an inference-only checkpoint (exported, without "
                            "optimiser and random state); train anew with a new --out")
    optimizer.load_state_dict(saved_checkpoint.optimizer)  # older files' "scheduler" entry is not needed
    torch.set_rng_state(saved_checkpoint.rng["torch"].cpu())
    if torch.cuda.is_available() and "cuda" in saved_checkpoint.rng:
        torch.cuda.set_rng_state_all([s.cpu() for s in saved_checkpoint.rng["cuda"]])
    return saved_checkpoint.epoch, list(saved_checkpoint.metrics), extended_from


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def _checkpoint(model, optimizer, cfg, spec, preprocess, history, classes, epoch) -> Checkpoint:
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return Checkpoint(model=state, spec=spec.to_dict(), preprocess=preprocess.to_dict(), classes=list(classes),
                      metrics=list(history), config=_jsonable(dataclasses.asdict(cfg)), epoch=epoch,
                      optimizer=optimizer.state_dict(), rng=rng)


LOG_EVERY = 100  # batches between the loop's reads of the device (progress bar, non-finite loss check)


def _train_epoch(step: TrainStep, net, source, optimizer, epoch, cfg, rank, batches_seen):
    from tqdm.auto import tqdm

    net.train()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(cfg, epoch)
    totals = step.totals
    totals.reset()
    device = totals.loss.device
    batches = data.epoch_batches(source, epoch)
    total = len(source) if hasattr(source, "__len__") else None
    bar = tqdm(batches, total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not (cfg.progress and rank == 0), mininterval=2)
    for k, (images, labels) in enumerate(bar):
        if cfg.stop_after_batches is not None and batches_seen[0] >= cfg.stop_after_batches:
            os._exit(3)  # simulate a crash/kill mid-epoch, without cleanup
        batches_seen[0] += 1
        step(images.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        if (k + 1) % LOG_EVERY == 0:
            _check_finite(totals.read(), epoch, bar)
    _check_finite(totals.read(), epoch)
    keys = ["loss", "n"] + totals.track
    reduced = dict(zip(keys, totals.summed()))
    stats = {"train_loss": reduced["loss"] / reduced["n"], "train_images": int(reduced["n"])}
    stats.update({f"train_err_t{t}": reduced[t] / reduced["n"] for t in totals.track})
    return stats


def _check_finite(read: dict, epoch: int, bar=None) -> None:
    """Stop at a non-finite loss (the batch that had it is named: it is found on the device)."""
    if read["bad_batch"] >= 0:
        raise TrainingError(f"the loss became {read['bad_loss']} at epoch {epoch + 1}, batch {read['bad_batch']}; "
                            "lower --lr, or turn bf16 off (--no-bf16); the last good checkpoint is kept")
    if bar is not None and read["n"]:
        bar.set_postfix(loss=f"{read['loss'] / read['n']:.3f}")


def _write_metrics(path: Path, history: list[dict]) -> None:
    fields = list(dict.fromkeys(k for row in history for k in row))

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=fields)
            writer.writeheader()
            writer.writerows(history)

    write_atomically(path, write)
