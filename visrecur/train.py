"""Train a model: ``python -m visrecur.train --model frnn_4state_shared --data-root DIR``.

Reads top to bottom: config -> data -> model -> optimiser -> epochs (train, validate, checkpoint).
Several GPUs or machines: launch the same command with ``torchrun --nproc_per_node N -m visrecur.train``.
"""
from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from . import checkpoint, data, zoo
from .errors import VisrecurError, report_errors
from .model import FRNN

# The paper's recipes (Section 5, Fig. 6). Every field can be overridden on the command line.
PRESETS = {
    "cifar10": dict(epochs=60, batch_size=64, lr=0.01, lr_schedule="steps", lr_steps=(40, 50),
                    augment="cifar", mean=data.CIFAR10_MEAN, std=data.CIFAR10_STD),
    "imagenet": dict(epochs=12, batch_size=256, lr=0.1, lr_schedule="logspace", lr_final=1e-4,
                     augment="imagenet", mean=data.IMAGENET_MEAN, std=data.IMAGENET_STD,
                     model_overrides={"bn_affine": True}),
}


class TrainingError(VisrecurError):
    """Training cannot go on (non-finite loss, unwritable output, incompatible resume)."""


@dataclass
class TrainConfig:
    model: str = "frnn_4state_shared"
    preset: str = "cifar10"
    data_root: str = "../shared/data/cifar10-jpeg"
    dataset: str = "folder"  # "folder" (ImageFolder train/ + test/ or val/) or "cifar10" (torchvision)
    download: bool = False
    out: str = "runs/default"
    epochs: int = 60
    batch_size: int = 64
    lr: float = 0.01
    lr_schedule: str = "steps"  # "steps": lr / 10 at each of lr_steps; "logspace": lr .. lr_final
    lr_steps: tuple = (40, 50)
    lr_final: float = 1e-4
    momentum: float = 0.9
    weight_decay: float = 0.0  # the paper states none
    augment: str = "cifar"
    mean: tuple = data.CIFAR10_MEAN
    std: tuple = data.CIFAR10_STD
    readout_times: tuple = ()  # loss summed over these; () = the model's readout time
    eval_readout_times: tuple = ()  # () = every readout time from the earliest to the largest trained
    model_overrides: dict = field(default_factory=dict)
    limit_train: int | None = None  # class-balanced subset, for quick runs
    limit_val: int | None = None
    device: str = "auto"
    bf16: bool | None = None  # None: on for CUDA, off on CPU
    channels_last: bool = False
    compile: bool = False
    deterministic: bool = False
    seed: int = 0
    workers: int = 4
    threads: int | None = None
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    stop_after_batches: int | None = None  # testing aid: exit abruptly after this many batches, as if killed


def build_config(preset: str = "cifar10", **overrides) -> TrainConfig:
    if preset not in PRESETS:
        raise TrainingError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    values = {**PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None}}
    if overrides.get("model_overrides") and preset == "imagenet":
        values["model_overrides"] = {**PRESETS[preset]["model_overrides"], **overrides["model_overrides"]}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise TrainingError(f"unknown training option(s) {unknown}")
    return TrainConfig(preset=preset, **values)


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of 0-based ``epoch``."""
    if cfg.lr_schedule == "logspace":  # Matlab's logspace(log10(lr), log10(lr_final), epochs)
        if cfg.epochs == 1:
            return cfg.lr
        return float(np.logspace(math.log10(cfg.lr), math.log10(cfg.lr_final), cfg.epochs)[epoch])
    return cfg.lr * 0.1 ** sum(epoch >= step for step in cfg.lr_steps)


# --- distributed helpers --------------------------------------------------------------------------
def setup_distributed(device: str):
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 1, 0
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend)
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def all_sum(values: list[float], device) -> list[float]:
    if not (dist.is_available() and dist.is_initialized()):
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def pick_device(requested: str, local_rank: int) -> str:
    if requested == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"--device {requested} asked for, but no CUDA GPU is visible; use --device cpu")
    return requested


# --- data -----------------------------------------------------------------------------------------
def make_data(cfg: TrainConfig, rank: int, world: int):
    """(train batches, validation batches, class names); each has .batches(epoch) or is a loader."""
    if cfg.augment == "imagenet":
        train_dir, val_dir = data.find_split(cfg.data_root, "train"), data.find_split(cfg.data_root, "val")
        size = cfg.model_overrides.get("input_size", 224)
        train = data.imagenet_loader(train_dir, cfg.batch_size, True, cfg.workers, cfg.seed, rank, world, size)
        val = data.imagenet_loader(val_dir, cfg.batch_size, False, cfg.workers, cfg.seed, rank, world, size)
        return train, val, train.dataset.classes
    if cfg.dataset == "cifar10":
        x_train, y_train, classes = data.load_cifar10_pickles(cfg.data_root, True, cfg.download)
        x_val, y_val, _ = data.load_cifar10_pickles(cfg.data_root, False, cfg.download)
        if cfg.limit_train:
            x_train, y_train = x_train[:cfg.limit_train], y_train[:cfg.limit_train]
        if cfg.limit_val:
            x_val, y_val = x_val[:cfg.limit_val], y_val[:cfg.limit_val]
    elif cfg.dataset == "folder":
        show = cfg.progress and rank == 0
        x_train, y_train, classes = data.decode_folder(data.find_split(cfg.data_root, "train"),
                                                       cfg.limit_train, cfg.seed, show)
        x_val, y_val, _ = data.decode_folder(data.find_split(cfg.data_root, "val"), cfg.limit_val,
                                             cfg.seed, show)
    else:
        raise TrainingError(f"unknown dataset {cfg.dataset!r}; use 'folder' (ImageFolder) or 'cifar10'")
    train = data.TensorBatches(x_train, y_train, cfg.batch_size, cfg.mean, cfg.std, True, cfg.seed,
                               rank, world, drop_last=world > 1)
    val = data.TensorBatches(x_val, y_val, cfg.batch_size, cfg.mean, cfg.std, False, cfg.seed, rank, world)
    return train, val, classes


def epoch_batches(source, epoch: int):
    if hasattr(source, "batches"):
        return source.batches(epoch)
    if hasattr(source, "sampler") and hasattr(source.sampler, "set_epoch"):
        source.sampler.set_epoch(epoch)
    return iter(source)


# --- the loop -------------------------------------------------------------------------------------
def train(cfg: TrainConfig) -> dict:
    """Run (or resume) a training; returns the final checkpoint payload (rank 0) or {}."""
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    rank, world, local_rank = setup_distributed(cfg.device if cfg.device != "auto" else
                                                ("cuda" if torch.cuda.is_available() else "cpu"))
    device = pick_device(cfg.device, local_rank)
    if device.startswith("cuda"):
        torch.cuda.set_device(device)
    use_bf16 = device.startswith("cuda") if cfg.bf16 is None else cfg.bf16
    out = Path(cfg.out)
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.csv"
    if rank == 0:
        _prepare_output(out, ckpt_path, cfg)

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
    loss_times = sorted(cfg.readout_times) or [spec.readout_time]
    if max(loss_times) > spec.time_steps:
        spec = zoo.spec(cfg.model, **{**cfg.model_overrides, "time_steps": max(loss_times)})
    eval_times = sorted(cfg.eval_readout_times) or list(range(spec.graph.earliest_readout, spec.time_steps + 1))
    model = FRNN(spec).to(device)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda e: lr_at(cfg, e) / cfg.lr)
    start_epoch, history = 0, []
    if cfg.resume and ckpt_path.exists():
        start_epoch, history = _resume(ckpt_path, model, optimizer, scheduler, cfg, device)
        if rank == 0:
            print(f"resuming {ckpt_path} after epoch {start_epoch}", flush=True)
    train_data, val_data, classes = make_data(cfg, rank, world)
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[local_rank] if device.startswith("cuda") else None, find_unused_parameters=True)
    step_fn = torch.compile(net) if cfg.compile else net

    payload, batches_seen = {}, [0]
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.time()
        train_stats = _train_epoch(step_fn, train_data, optimizer, epoch, loss_times, eval_times, cfg,
                                   device, use_bf16, rank, batches_seen)
        scheduler.step()
        val_err = evaluate(model, val_data, eval_times, device, use_bf16, cfg.channels_last)
        seconds = time.time() - t0
        row = {"epoch": epoch + 1, "lr": lr_at(cfg, epoch), **train_stats,
               **{f"val_err_t{t}": e for t, e in val_err.items()},
               "seconds": round(seconds, 1), "images_per_s": round(train_stats["train_images"] / seconds, 1)}
        history.append(row)
        if rank == 0:
            payload = _payload(model, optimizer, scheduler, cfg, spec, history, classes, epoch + 1)
            checkpoint.atomic_save(payload, ckpt_path)
            _write_metrics(metrics_path, history)
            best = min(val_err, key=val_err.get)
            print(f"epoch {epoch + 1}/{cfg.epochs}  loss {row['train_loss']:.3f}  val error "
                  + " ".join(f"t{t}:{100 * e:.1f}%" for t, e in val_err.items())
                  + f"  (best t{best})  {row['images_per_s']:.0f} img/s", flush=True)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return payload


def _prepare_output(out: Path, ckpt_path: Path, cfg: TrainConfig) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise TrainingError(f"cannot write to output folder {str(out)!r} ({err.strerror}); choose another "
                            "with --out") from None
    if ckpt_path.exists() and not (cfg.resume or cfg.overwrite):
        raise TrainingError(f"{str(ckpt_path)!r} already exists; pass --resume to continue it or --overwrite "
                            "to start again (the old checkpoint is replaced only after the first epoch)")


def _resume(path, model, optimizer, scheduler, cfg, device):
    payload = checkpoint.read(path, map_location=device)
    saved = payload["config"]
    for key in ("model", "model_overrides", "readout_times"):
        mine = getattr(cfg, key)
        theirs = saved.get(key)
        if json.dumps(_jsonable(mine), sort_keys=True) != json.dumps(_jsonable(theirs), sort_keys=True):
            raise TrainingError(f"cannot resume {str(path)!r}: it was trained with {key}={theirs!r}, not "
                                f"{mine!r}; use the same options or a new --out")
    checkpoint.load_state(model, payload["model"], f"checkpoint {str(path)!r}")
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    torch.set_rng_state(payload["rng"]["torch"].cpu())
    if torch.cuda.is_available() and "cuda" in payload["rng"]:
        torch.cuda.set_rng_state_all([s.cpu() for s in payload["rng"]["cuda"]])
    return payload["epoch"], list(payload["metrics"])


def _jsonable(value):
    return json.loads(json.dumps(value, default=list))


def _payload(model, optimizer, scheduler, cfg, spec, history, classes, epoch) -> dict:
    from . import __version__

    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    return {"format": checkpoint.FORMAT, "visrecur_version": __version__, "torch_version": str(torch.__version__),
            "epoch": epoch, "model": state, "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(), "rng": rng, "config": _jsonable(dataclasses.asdict(cfg)),
            "spec": spec.to_dict(), "metrics": history, "classes": list(classes),
            "normalization": {"mean": list(cfg.mean), "std": list(cfg.std)}}


def _train_epoch(net, source, optimizer, epoch, loss_times, eval_times, cfg, device, use_bf16, rank,
                 batches_seen):
    from tqdm.auto import tqdm

    net.train()
    for group in optimizer.param_groups:
        group["lr"] = lr_at(cfg, epoch)
    track = sorted(set(loss_times) | {t for t in eval_times if t <= max(loss_times)})
    sums = {"loss": 0.0, "n": 0.0, **{t: 0.0 for t in track}}
    batches = epoch_batches(source, epoch)
    total = len(source) if hasattr(source, "__len__") else None
    bar = tqdm(batches, total=total, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
               disable=not (cfg.progress and rank == 0), mininterval=2)
    for k, (images, labels) in enumerate(bar):
        if cfg.stop_after_batches is not None and batches_seen[0] >= cfg.stop_after_batches:
            os._exit(3)  # simulate a crash/kill mid-epoch, without cleanup
        batches_seen[0] += 1
        images, labels = images.to(device, non_blocking=True), labels.to(device, non_blocking=True)
        if cfg.channels_last:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            logits = net(images, readout_time=track)
            loss = sum(F.cross_entropy(logits[t].float(), labels) for t in loss_times)
        if not torch.isfinite(loss):
            raise TrainingError(f"the loss became {loss.item()} at epoch {epoch + 1}, batch {k + 1}; lower "
                                "--lr, or turn bf16 off (--no-bf16); the last good checkpoint is kept")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = len(labels)
        sums["loss"] += loss.item() * n
        sums["n"] += n
        for t in track:
            sums[t] += (logits[t].argmax(1) != labels).sum().item()
        if k % 20 == 0:
            bar.set_postfix(loss=f"{loss.item():.3f}")
    keys = ["loss", "n"] + track
    reduced = dict(zip(keys, all_sum([sums[key] for key in keys], device)))
    stats = {"train_loss": reduced["loss"] / reduced["n"], "train_images": int(reduced["n"])}
    stats.update({f"train_err_t{t}": reduced[t] / reduced["n"] for t in track})
    return stats


@torch.no_grad()
def evaluate(model, source, readout_times, device, use_bf16=False, channels_last=False) -> dict[int, float]:
    """Top-1 error at every readout time, from one pass per batch."""
    model.eval()
    errors = {t: 0.0 for t in readout_times}
    count = 0.0
    for images, labels in epoch_batches(source, 0):
        images, labels = images.to(device), labels.to(device)
        if channels_last:
            images = images.to(memory_format=torch.channels_last)
        with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=use_bf16):
            logits = model(images, readout_time=list(readout_times))
        for t in readout_times:
            errors[t] += (logits[t].argmax(1) != labels).sum().item()
        count += len(labels)
    reduced = all_sum([errors[t] for t in readout_times] + [count], device)
    return {t: reduced[k] / reduced[-1] for k, t in enumerate(readout_times)}


def _write_metrics(path: Path, history: list[dict]) -> None:
    fields = list(dict.fromkeys(k for row in history for k in row))
    tmp = path.with_suffix(".csv.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(history)
    os.replace(tmp, path)


def export_weights(checkpoint_path: str | Path, destination: str | Path) -> None:
    """Write a small inference-only checkpoint (no optimiser state) for shipping with the package."""
    payload = checkpoint.read(checkpoint_path)
    slim = {k: payload[k] for k in ("format", "visrecur_version", "torch_version", "epoch", "model", "spec",
                                    "metrics", "classes", "normalization", "config")}
    checkpoint.atomic_save(slim, destination)


# --- command line ---------------------------------------------------------------------------------
def parse_args(argv=None) -> TrainConfig:
    p = argparse.ArgumentParser(
        prog="python -m visrecur.train",
        description="Train a visrecur model with one of the paper's recipes (presets). Every preset "
                    "option can be overridden. Launch with torchrun for several GPUs.")
    p.add_argument("--model", default="frnn_4state_shared", help="zoo model (visrecur.list_models())")
    p.add_argument("--preset", default="cifar10", help=f"training recipe: {', '.join(sorted(PRESETS))}")
    p.add_argument("--data-root", default="../shared/data/cifar10-jpeg",
                   help="ImageFolder root with train/ and test/ (or val/), or a torchvision CIFAR-10 root")
    p.add_argument("--dataset", choices=["folder", "cifar10"], default="folder")
    p.add_argument("--download", action="store_true", help="download CIFAR-10 (needs a network)")
    p.add_argument("--out", default=None, help="output folder (default runs/<model>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--lr-steps", type=int, nargs="*", help="epochs after which the lr is divided by 10")
    p.add_argument("--lr-schedule", choices=["steps", "logspace"])
    p.add_argument("--weight-decay", type=float)
    p.add_argument("--readout-time", type=int, help="the model's readout time")
    p.add_argument("--loss-readout-times", type=int, nargs="*", default=[],
                   help="sum the loss over these readout times (default: the model's readout time)")
    p.add_argument("--time-steps", type=int, help="steps to build TSBN/weights for (>= readout time)")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="any other zoo builder argument, VALUE as JSON, e.g. --model-arg 'channels=[8,16,32,64]'")
    p.add_argument("--limit-train", type=int, help="train on a class-balanced subset of this many images")
    p.add_argument("--limit-val", type=int)
    p.add_argument("--device", default="auto")
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast (default: on for CUDA)")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compile", action="store_true", help="torch.compile the model")
    p.add_argument("--deterministic", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=4, help="DataLoader workers (ImageNet-style data)")
    p.add_argument("--threads", type=int, help="CPU threads for torch")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    p.add_argument("--overwrite", action="store_true", help="start again even if OUT has a checkpoint")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--stop-after-batches", type=int, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    model_overrides = {k: v for k, v in (("readout_time", a.readout_time), ("time_steps", a.time_steps))
                       if v is not None}
    for item in a.model_arg:
        key, sep, value = item.partition("=")
        if not sep:
            p.error(f"--model-arg {item!r} must be KEY=VALUE")
        try:
            model_overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            model_overrides[key] = value
    return build_config(
        a.preset, model=a.model, data_root=a.data_root, dataset=a.dataset, download=a.download,
        out=a.out or f"runs/{a.model}", epochs=a.epochs, batch_size=a.batch_size, lr=a.lr,
        lr_steps=tuple(a.lr_steps) if a.lr_steps is not None else None, lr_schedule=a.lr_schedule,
        weight_decay=a.weight_decay, readout_times=tuple(a.loss_readout_times),
        model_overrides=model_overrides or None, limit_train=a.limit_train, limit_val=a.limit_val,
        device=a.device, bf16=a.bf16, channels_last=a.channels_last, compile=a.compile,
        deterministic=a.deterministic, seed=a.seed, workers=a.workers, threads=a.threads,
        resume=a.resume, overwrite=a.overwrite, progress=not a.no_progress,
        stop_after_batches=a.stop_after_batches)


@report_errors
def main(argv=None) -> int:
    train(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
