"""The one script a session with a GPU runs (issue 13): every CUDA path once, training and recording
throughput side by side, a short Table 1 run if time is left; all of it written to one JSON file.

    python benchmarks/gpu_check.py --data-root /tmp/cifar10-jpeg --out "$OUT"     # one GPU, under 10 minutes
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu_check                  # CPU, tiny settings

How to run it on the device machine: benchmarks/gpu_check.sh (and benchmarks/README.md).

Sections, each timed and kept apart (an error in one is written down and the next runs); the JSON is
rewritten after each, so a run cut short still leaves what it measured:

* ``environment``: device name, torch/CUDA/cuDNN versions, CPU count.
* ``paths``: the command lines on the device words (``--device cuda``, ``cuda:0``, ``auto``; training with
  ``--cuda-graphs``; recording with workers) and the bad device words, each a subprocess, side by side
  (and beside ``compile``, which is joined before anything is timed): exit codes and the last lines.
* ``equivalence``: device-resident batches against CPU-made ones (largest difference), host
  synchronisations inside steady training steps (``torch.cuda.set_sync_debug_mode("error")``), and a
  graphed training step against eager ones.
* ``training``: images/s of SGD steps through the trainer's own step (``visrecur.training.step.TrainStep``) for
  the 3-state FRNN of Table 1 at t = 10 and the 4-state FRNN, by data path (``loader``: a torchvision
  DataLoader decoding the JPEG files; ``host``: decoded images in CPU memory, batches copied to the GPU,
  which is what the trainer did before; ``host+reads``: the same with a host read after every step,
  as the old loop had; ``device``: images resident on the GPU; ``static``: one batch reused, the bound)
  and by execution (fp32, bf16, bf16 + CUDA graphs, bf16 + torch.compile in a child process with a
  time limit: ``compile``): host time spent fetching batches, GPU busy fraction (NVML, where it can be read), peak
  memory, MFU against a matmul peak measured on the same GPU.
* ``profile``: where one training step's device time goes (torch.profiler), by kind of kernel (convolution,
  layout copies, batch norm, elementwise...) and the costliest kernels by name, NCHW and channels-last.
* ``recording``: the shipped model over the CIFAR-10 test images, ``--reduction mean``, with 0 and N
  loader processes, against a plain forward pass over the same preloaded images; unreduced to .nc
  against writing as many bytes to the same disk (needs h5netcdf).
* ``table1``: the 3-state FRNN at t = 5, then t = 10, with the paper's recipe (batch 64, lr 0.01, momentum
  0.9) and its schedule compressed to as many epochs as the time left allows (of its 60; ``paper_lr_steps``),
  bf16, CUDA graphs, data on the device; bf16 weights into ``--out``.
* ``ratios``: the comparisons above as ratios.
"""
from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks"), str(REPO / "tests")]

import torch  # noqa: E402

from visrecur.architecture import zoo  # noqa: E402
from visrecur.training import data
from visrecur.nn.model import FRNN  # noqa: E402
from visrecur.recording.preprocess import CIFAR10_MEAN, CIFAR10_STD  # noqa: E402
from visrecur.training.step import EpochTotals, TrainStep  # noqa: E402

# (zoo model, readout time): the Table 1 3-state FRNN at t = 10 (the targets) and the 4-state FRNN
MODELS = (("frnn_3state_shared", 10), ("frnn_4state_shared", 5))
COMMAND_TIMEOUT = 240  # seconds for each command line of ``paths`` (900 with --quick: a busy CPU)


class Check:
    """The results, one section at a time, rewritten to ``path`` after each; a time budget for all."""

    def __init__(self, path: Path, budget: float):
        self.path, self.budget, self.start = path, budget, time.perf_counter()
        self.lock = threading.Lock()  # sections may run side by side (paths beside compile)
        self.results = {"script": "benchmarks/gpu_check.py", "argv": sys.argv[1:], "sections": {}}

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.start)

    def record(self, name: str, result: dict) -> None:
        """Set one section's result and rewrite the file; sections may run in two threads."""
        with self.lock:
            self.results["sections"][name] = result
        self.save()

    def section(self, name: str, fn, *args, need: float = 0.0):
        if self.left() < need:
            self.record(name, {"skipped": f"{self.left():.0f} s of the budget left, {need:.0f} needed"})
            return None
        print(f"--- {name} ({self.left():.0f} s of the budget left)", flush=True)
        start = time.perf_counter()
        try:
            result = fn(*args)
        except Exception as err:  # written down; the next section still runs
            result = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-3000:]}
            print(result["traceback"], flush=True)
        result = dict(result or {})
        result["section_seconds"] = round(time.perf_counter() - start, 1)
        self.record(name, result)
        return result

    def save(self) -> None:
        with self.lock:
            self.results["elapsed_s"] = round(time.perf_counter() - self.start, 1)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps(self.results, indent=1, default=str) + "\n")
            os.replace(tmp, self.path)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


# --- environment and paths ------------------------------------------------------------------------
def environment(args) -> dict:
    env = {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
           "device": args.device, "quick": args.quick,
           # which code ran: the checkout travels without .git, so prepare writes `git describe` beside the data
           "source": os.environ.get("GPU_CHECK_SOURCE") or _git_describe(),
           "gpu_check_sha256": hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]}
    if args.device.startswith("cuda"):
        props = torch.cuda.get_device_properties(args.device)
        env.update(device_name=props.name, memory_gb=round(props.total_memory / 1e9, 1),
                   capability=f"{props.major}.{props.minor}", multiprocessors=props.multi_processor_count,
                   cuda=torch.version.cuda, cudnn=torch.backends.cudnn.version(), gpus=torch.cuda.device_count())
    else:
        env["device_name"] = platform.processor() or platform.machine()
    return env


def _git_describe() -> str | None:
    try:
        done = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return None
    return done.stdout.strip() or None


def run_command(argv, cwd, timeout=None) -> dict:
    timeout = timeout or COMMAND_TIMEOUT
    start = time.perf_counter()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    try:
        done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"argv": argv[2:], "error": f"did not finish in {timeout} s"}
    lines = (done.stdout + done.stderr).strip().splitlines()
    return {"argv": argv[2:], "returncode": done.returncode, "seconds": round(time.perf_counter() - start, 1),
            "last_lines": lines[-4:]}


def paths(args, work: Path) -> dict:
    """The command lines on every device word, and the bad ones (one line, exit code 2)."""
    py = sys.executable
    cuda = args.device.startswith("cuda")
    n = 128 if args.quick else 256
    tiny = ["--model", "frnn_2state_shared", "--model-arg", "channels=[8,16]", "--readout-time", "3",
            "--data-root", args.data_root, "--limit-train", str(n), "--limit-val", str(n // 2), "--epochs", "1",
            "--no-progress"]
    words = (["cuda", "cuda:0"] if cuda else ["cpu", "auto"])
    out = {}
    commands = {f"train --device {word}": [py, "-m", "visrecur.train", *tiny, "--device", word, "--out",
                                           str(work / f"train_{word}")] for word in words}
    if cuda:
        commands["train --device cuda --cuda-graphs"] = [py, "-m", "visrecur.train", *tiny, "--device", "cuda",
                                                         "--cuda-graphs", "--out", str(work / "graphs")]
        commands["train --device cuda --no-data-on-device"] = [py, "-m", "visrecur.train", *tiny, "--device",
                                                               "cuda", "--no-data-on-device", "--out",
                                                               str(work / "host")]
    bad = {"cuda:7": ["--device", "cuda:7"], "cuda-graphs on cpu": ["--device", "cpu", "--cuda-graphs"]}
    for name, extra in bad.items():
        commands[f"bad: train {name}"] = [py, "-m", "visrecur.train", *tiny, *extra, "--out", str(work / "bad")]
    try:
        import h5netcdf  # noqa: F401
        commands[f"record --device {args.device} --workers 2"] = [
            py, "-m", "visrecur.record", "--stimuli", f"cifar10-test:{args.data_root}", "--limit", str(n),
            "--reduction", "mean", "--device", "cuda" if cuda else "cpu", "--workers", "2", "--output",
            str(work / "rec.nc"), "--no-progress"]
    except ImportError:  # the device image has no h5netcdf: record in memory instead (below)
        out["record command"] = {"skipped": "h5netcdf is not installed (carry its wheel: benchmarks/README.md)"}
    # side by side: these check exit codes and messages, not speed, and each mostly starts Python and torch
    with ThreadPoolExecutor(max_workers=len(commands) if cuda else 2) as pool:
        done = dict(zip(commands, pool.map(lambda argv: run_command(argv, REPO), commands.values())))
    for name, result in done.items():
        if name.startswith("bad:"):
            result["one_clear_line"] = result.get("returncode") == 2 and len(result["last_lines"]) == 1
            result["nothing_written"] = not (work / "bad").exists()
        out[name] = result
    from visrecur.artifacts.models import load_model
    from visrecur.recording import record
    from visrecur.recording.stimuli import cifar10_test

    start = time.perf_counter()
    ds = record(load_model(None), cifar10_test(args.data_root, n), batch_size=64, device=args.device,
                reduction="mean", workers=2, progress=False)
    out[f"record() in memory on {args.device}, 2 workers"] = {
        "seconds": round(time.perf_counter() - start, 1), "stimuli": int(ds.sizes["stimulus"]),
        "top1_error_at_readout_5": float((ds.logits.sel(readout_time=5).argmax("class").values
                                          != _label_index(ds)).mean())}
    return out


def _label_index(ds):
    import numpy as np

    classes = [str(c) for c in ds["class"].values]
    return np.array([classes.index(str(label)) if str(label) in classes else -1
                     for label in ds["stimulus_label"].values])


# --- equivalence ---------------------------------------------------------------------------------
def equivalence(args, train_images, train_labels) -> dict:
    device, out = args.device, {}
    n = min(len(train_labels), 2048)
    x, y = train_images[:n], train_labels[:n]
    cpu = data.TensorBatches(x, y, 64, CIFAR10_MEAN, CIFAR10_STD, seed=1)
    dev = data.TensorBatches(x, y, 64, CIFAR10_MEAN, CIFAR10_STD, seed=1, device=device)
    diffs = [float((a.to(device) - b).abs().max()) for (a, _), (b, _), _ in zip(cpu.batches(3), dev.batches(3),
                                                                                  range(8))]
    labels_equal = all(torch.equal(a.to(device), b) for (_, a), (_, b) in zip(cpu.batches(3), dev.batches(3)))
    out["device_vs_cpu_batches"] = {"max_abs_difference": max(diffs), "labels_equal": labels_equal}
    if not device.startswith("cuda"):
        out["host_syncs_in_steady_steps"] = {"skipped": "CUDA only (torch.cuda.set_sync_debug_mode)"}
        out["graphed_vs_eager"] = {"skipped": "CUDA only"}
        return out
    name, readout = MODELS[0]
    source = _endless(dev)
    for graphs in (False, True):
        step, _, _ = _trainer(name, readout, args, device, bf16=True, graphs=graphs)
        for _ in range(6):  # warm-up (and capture)
            step(*next(source))
        sync(device)
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(5):
                step(*next(source))
            verdict = "none"
        except RuntimeError as err:
            verdict = f"a step synchronises: {str(err).splitlines()[0]}"
        finally:
            torch.cuda.set_sync_debug_mode("default")
        sync(device)
        out[f"host_syncs_in_steady_steps{' (cuda graphs)' if graphs else ''}"] = verdict
    losses = {}
    for graphs in (False, True):  # fp32, the same batches: the graph replays the same arithmetic
        step, model, totals = _trainer(name, readout, args, device, bf16=False, graphs=graphs)
        totals.reset()
        for batch_x, batch_y in itertools.islice(dev.batches(5), 12):
            step(batch_x, batch_y)
        losses[graphs] = totals.read()["loss"]
        losses[f"params_{graphs}"] = torch.cat([p.detach().flatten() for p in model.parameters()])
    out["graphed_vs_eager"] = {
        "loss_sum_eager": losses[False], "loss_sum_graphed": losses[True],
        "relative_difference": abs(losses[True] - losses[False]) / abs(losses[False]),
        "max_param_difference": float((losses["params_True"] - losses["params_False"]).abs().max())}
    return out


# --- training throughput -------------------------------------------------------------------------
def _build(name, readout, args, device, channels_last=False):
    """A fresh model (seed 0); ``--channels`` makes the 3-state FRNN smaller (the 4-state one is small)."""
    torch.manual_seed(0)
    kwargs = {"readout_time": readout}
    if args.channels and name.startswith("frnn_3state"):
        kwargs["channels"] = tuple(args.channels)
    model = FRNN(zoo.spec(name, **kwargs)).to(device)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def _trainer(name, readout, args, device, bf16, graphs, compile_=False, channels_last=False):
    model = _build(name, readout, args, device, channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    totals = EpochTotals([readout], device)
    if compile_ == "regions":  # each transition block compiled (visrecur.nn.blocks.compile_regions)
        from visrecur.nn.blocks import compile_regions

        compile_regions(model)
    forward = torch.compile(model) if compile_ is True else model
    step = TrainStep(forward, optimizer, [readout], totals, device, bf16, channels_last, graphs=graphs)
    return step, model, totals


def _endless(source):
    for epoch in itertools.count():
        yield from data.epoch_batches(source, epoch)


class _Busy:
    """Mean GPU utilisation (NVML: the share of time a kernel ran) sampled every 20 ms, where readable."""

    def __init__(self, device):
        self.samples, self.stop, self.handle = [], threading.Event(), None
        if device.startswith("cuda"):
            try:
                import pynvml

                pynvml.nvmlInit()
                index = torch.device(device).index or 0
                self.handle, self.nvml = pynvml.nvmlDeviceGetHandleByIndex(index), pynvml
            except Exception:
                self.handle = None

    def __enter__(self):
        if self.handle is not None:
            self.thread = threading.Thread(target=self._run, daemon=True)
            self.thread.start()
        return self

    def _run(self):
        while not self.stop.wait(0.02):
            self.samples.append(self.nvml.nvmlDeviceGetUtilizationRates(self.handle).gpu)

    def __exit__(self, *exc):
        self.stop.set()
        if self.handle is not None:
            self.thread.join()

    def mean(self):
        return round(sum(self.samples) / len(self.samples), 1) if self.samples else None


def throughput(name, readout, args, batch, kind, sources, precision="bf16", graphs=False, reads=False,
               compile_=False, channels_last=False) -> dict:
    device = args.device
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    step, _, totals = _trainer(name, readout, args, device, precision == "bf16", graphs, compile_,
                               channels_last)
    batches = _endless(sources[(kind, batch)])
    start = time.perf_counter()
    for _ in range(args.warmup + (3 if graphs else 0)):  # graphs: 3 eager warm-up steps, then the capture
        x, y = next(batches)
        step(x.to(device, non_blocking=True), y.to(device, non_blocking=True))
    sync(device)
    first_steps_s = time.perf_counter() - start
    fetch = 0.0
    with _Busy(device) as busy:
        start = time.perf_counter()
        for _ in range(args.steps):
            t = time.perf_counter()
            x, y = next(batches)
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            fetch += time.perf_counter() - t
            step(x, y)
            if reads:
                totals.read()
        sync(device)
        seconds = time.perf_counter() - start
    result = {"images_per_s": round(args.steps * batch / seconds, 1), "host_fetch_fraction": round(fetch / seconds, 3),
              "gpu_busy_pct": busy.mean(), "warmup_s": round(first_steps_s, 1)}
    if device.startswith("cuda"):
        result["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20)
    return result


def forward_macs(name, readout, args) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    model = _build(name, readout, args, "cpu").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(torch.randn(1, 3, 32, 32), readout_time=readout)
    return counter.get_total_flops() / 2


def matmul_peak(device, dtype, size=4096, repeats=20) -> float:
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def make_sources(args, images, labels, batches) -> dict:
    """(data path, batch size) -> a batch source; every path yields same-size batches (drop_last)."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    sources = {}
    for batch in batches:
        sources[("host", batch)] = sources[("host+reads", batch)] = data.TensorBatches(
            images, labels, batch, CIFAR10_MEAN, CIFAR10_STD, drop_last=True)
        sources[("device", batch)] = data.TensorBatches(images, labels, batch, CIFAR10_MEAN, CIFAR10_STD,
                                                        drop_last=True, device=args.device)
        x, y = next(iter(sources[("device", batch)].batches(0)))
        sources[("static", batch)] = _Repeat(x, y)
        tf = transforms.Compose([transforms.RandomCrop(32, padding=4), transforms.RandomHorizontalFlip(),
                                 transforms.ToTensor(), transforms.Normalize(CIFAR10_MEAN, CIFAR10_STD)])
        folder = datasets.ImageFolder(str(Path(args.data_root) / "train"), transform=tf)
        sources[("loader", batch)] = DataLoader(folder, batch_size=batch, shuffle=True, drop_last=True,
                                                num_workers=args.workers, pin_memory=args.device.startswith("cuda"),
                                                persistent_workers=args.workers > 0,
                                                generator=torch.Generator().manual_seed(0))
    return sources


class _Repeat:
    def __init__(self, x, y):
        self.x, self.y = x, y

    def batches(self, epoch):
        while True:
            yield self.x, self.y


def training(args, images, labels) -> dict:
    device, cuda = args.device, args.device.startswith("cuda")
    small, large = args.batch_sizes
    sources = make_sources(args, images, labels, (small, large))
    out = {"steps_timed": args.steps, "warmup_steps": args.warmup, "train_images_in_memory": len(labels),
           "resident_data_mb": round(images.numel() / 2**20), "loader_workers": args.workers}
    peaks = {}
    if cuda:  # MFU on the GPU only: a CPU's small matmul peak would say little
        peaks = {"fp32": matmul_peak(device, torch.float32), "bf16": matmul_peak(device, torch.bfloat16)}
        out["matmul_peak_tflops"] = {k: round(v / 1e12, 2) for k, v in peaks.items()}
    # (batch, data path, precision, graphs, host read after every step); the second model: the first six
    # and the graphed one at the small batch
    variants = [(small, "loader", "bf16", False, False), (small, "host+reads", "bf16", False, True),
                (small, "host", "bf16", False, False), (small, "device", "fp32", False, False),
                (small, "device", "bf16", False, False), (small, "static", "bf16", False, False)]
    graphed = [(small, "device", "bf16", True, False)] if cuda else []
    rest = [(large, "host", "bf16", False, False), (large, "device", "bf16", False, False)]
    if cuda:  # channels-last: cuDNN's bf16 convolutions want NHWC; is the copy in and out worth it here?
        rest += [(small, "static", "bf16", True, False), (large, "device", "bf16", True, False),
                 (small, "device", "bf16", True, False, True), (large, "device", "bf16", True, False, True),
                 # regional compilation under the graph: fused normalisations, one launch per step
                 (small, "device", "bf16", True, False, False, True), (large, "device", "bf16", True, False, False, True)]
    for k, (name, readout) in enumerate(MODELS[:args.timed_models]):
        macs = forward_macs(name, readout, args)
        runs = {}
        for _ in range(args.repeats):  # interleaved: drift and load hit every variant alike
            for batch, kind, precision, graphs, reads, *extra in variants + graphed + (rest if k == 0 else []):
                cl, regions = (list(extra) + [False, False])[:2]
                label = (f"b{batch} {kind} {precision}{' graphs' if graphs else ''}{' channels-last' if cl else ''}"
                         f"{' regions' if regions else ''}")
                try:
                    row = throughput(name, readout, args, batch, kind, sources, precision, graphs, reads,
                                     compile_="regions" if regions else False,
                                     channels_last=cl or args.channels_last)
                except Exception as err:
                    row = {"error": f"{type(err).__name__}: {err}"}
                print(f"{name} t={readout} {label:28s} {row}", flush=True)
                runs.setdefault(label, []).append(row)
        rows = {}
        for label, results in runs.items():
            row = dict(results[0]) if len(results) == 1 else _median_row(results)
            precision = label.split()[2]
            if "images_per_s" in row and cuda:
                achieved = row["images_per_s"] * macs * 2 * 3  # forward + backward ~ 3 x forward FLOPs
                row["mfu_pct"] = round(100 * achieved / peaks[precision], 2)
            if "images_per_s" in row:
                row["epoch_60_minutes"] = round(60 * 50_000 / row["images_per_s"] / 60, 1)
            rows[label] = row
        out[f"{name} t={readout}"] = {"forward_gmac_per_image": round(macs / 1e9, 3), "variants": rows}
    return out


def _median_row(results: list[dict]) -> dict:
    """The run with the median images/s, with every run's images/s beside it."""
    good = [r for r in results if "images_per_s" in r]
    if not good:
        return results[0]
    good.sort(key=lambda r: r["images_per_s"])
    return {**good[len(good) // 2], "images_per_s_runs": [r["images_per_s"] for r in good]}


def compile_child(args) -> dict:
    """In a child process (killed at the time limit): eager images/s on one static batch, then the same
    model compiled (``--compile-mode``: the whole model, or each transition block, ``compile_regions``):
    the first two steps' time (compiling) and images/s."""
    name, readout = MODELS[0]
    batch = args.batch_sizes[0]
    x = torch.randn(batch, 3, 32, 32, device=args.device)
    y = torch.randint(0, 10, (batch,), device=args.device)
    bf16 = args.device.startswith("cuda")

    def rate(step):
        for _ in range(2):
            step(x, y)
        sync(args.device)
        start = time.perf_counter()
        for _ in range(args.steps):
            step(x, y)
        sync(args.device)
        return round(args.steps * batch / (time.perf_counter() - start), 1)

    eager = rate(_trainer(name, readout, args, args.device, bf16, False)[0])
    step, _, _ = _trainer(name, readout, args, args.device, bf16, False,
                          compile_=True if args.compile_mode == "whole" else "regions")
    start = time.perf_counter()
    for _ in range(2):
        step(x, y)
    sync(args.device)
    compile_s = time.perf_counter() - start
    return {"mode": args.compile_mode, "compile_s": round(compile_s, 1), "images_per_s_static_batch": rate(step),
            "eager_images_per_s_static_batch": eager}


def compiled(args) -> dict:
    """Each of --compile-modes in a child killed after --compile-timeout s."""
    out = {}
    for mode in args.compile_modes:
        argv = [sys.executable, __file__, "--child-compile", "--compile-mode", mode, "--device", args.device,
                "--steps", str(args.steps), "--batch-sizes", *map(str, args.batch_sizes)] + (
                    ["--channels", *map(str, args.channels)] if args.channels else [])
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=args.compile_timeout)
        except subprocess.TimeoutExpired:
            out[mode] = {"error": f"compiling {MODELS[0][0]} t={MODELS[0][1]} ({mode}) did not finish in "
                                  f"{args.compile_timeout} s"}
            continue
        if done.returncode != 0:
            out[mode] = {"error": (done.stderr.strip().splitlines() or ["?"])[-1][:300]}
            continue
        out[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    return out


# --- where a step's time goes ---------------------------------------------------------------------
# kernel name -> kind, first match wins: tells convolutions from the layout copies cuDNN adds around NCHW
# bf16 convolutions, from the copies and casts ATen makes (channels-last conversions, autocast's bf16
# weights), normalisation and elementwise work (names as cuDNN, cuBLAS and ATen give them)
KERNEL_KINDS = (
    ("layout copy", ("nchwtonhwc", "nhwctonchw", "transpose", "permute")),
    ("batch norm", ("batch_norm", "batchnorm", "bn_fw", "bn_bw", "welford")),
    ("convolution", ("conv", "dgrad", "wgrad", "fprop", "implicit_gemm", "winograd")),
    ("matmul", ("gemm", "cublas", "cutlass")),
    ("copy / cast", ("direct_copy", "copy_kernel", "catarray", "memcpy", "memset")),
    ("reduction", ("reduce",)),
    ("pooling / resampling", ("pool", "upsample", "interpolate")),
    ("elementwise", ("elementwise", "vectorized", "unrolled", "fill", "foreach")),
)


def kernel_kind(name: str) -> str:
    low = name.lower()
    return next((kind for kind, keys in KERNEL_KINDS if any(k in low for k in keys)), "other")


def profile(args, images, labels) -> dict:
    """One eager training step of the Table 1 model profiled (torch.profiler) at each batch size, NCHW and
    (on a GPU) channels-last: each kind of kernel's share of the device time and the 12 costliest kernels
    by name (on a CPU: ATen operators and CPU time). Says what to fuse or re-lay out next."""
    from torch.profiler import ProfilerActivity, profile as torch_profile

    cuda = args.device.startswith("cuda")
    name, readout = MODELS[0]
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    out = {"steps_profiled": args.profile_steps, "time": "device (CUDA kernels)" if cuda else "CPU (ATen operators)"}
    for batch in args.batch_sizes:
        x, y = next(iter(data.TensorBatches(images, labels, batch, CIFAR10_MEAN, CIFAR10_STD, drop_last=True,
                                            device=args.device).batches(0)))
        for channels_last in (False, True) if cuda else (False,):
            step, _, _ = _trainer(name, readout, args, args.device, True, False, channels_last=channels_last)
            for _ in range(args.warmup):
                step(x, y)
            sync(args.device)
            with torch_profile(activities=activities) as prof:
                for _ in range(args.profile_steps):
                    step(x, y)
                sync(args.device)
            out[f"b{batch}{' channels-last' if channels_last else ''}"] = _time_shares(prof.events(), cuda,
                                                                                     args.profile_steps)
    return out


def _time_shares(events, cuda: bool, steps: int) -> dict:
    """Self time per kernel (CUDA) or ATen operator (CPU) -> shares by kind, the costliest by name."""
    per_name: dict[str, float] = {}
    for e in events:
        on_device = getattr(e, "device_type", None) == torch.autograd.DeviceType.CUDA
        # a kernel, copy or memset: its own duration; a record_function span shown on the GPU's timeline
        # (the optimiser's step) covers kernels counted already
        if cuda and on_device and not getattr(e, "is_user_annotation", False):
            us = e.time_range.elapsed_us()
        elif not cuda and e.name.startswith("aten::"):
            us = e.self_cpu_time_total
        else:
            continue
        per_name[e.name] = per_name.get(e.name, 0.0) + us
    total = sum(per_name.values())
    if total <= 0:
        return {"error": "the profiler recorded no time"}
    kinds: dict[str, float] = {}
    for kernel, us in per_name.items():
        kind = kernel_kind(kernel)
        kinds[kind] = kinds.get(kind, 0.0) + us
    top = sorted(per_name.items(), key=lambda kv: -kv[1])[:12]
    return {"ms_per_step": round(total / 1e3 / steps, 2), "distinct": len(per_name),
            "share_pct_by_kind": {k: round(100 * v / total, 1)
                                  for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])},
            "costliest": [{"name": n[:160], "kind": kernel_kind(n), "share_pct": round(100 * us / total, 1)}
                          for n, us in top]}


# --- recording -----------------------------------------------------------------------------------
def recording(args) -> dict:
    import numpy as np

    from visrecur.artifacts.models import load_model

    from visrecur.recording import record
    from visrecur.artifacts.recordings import plan
    from visrecur.recording.stimuli import cifar10_test

    device, n, batch = args.device, args.record_images, args.record_batch
    source = load_model(None)
    stimuli = cifar10_test(args.data_root, n)
    out = {"stimuli": len(stimuli), "batch_size": batch, "model": source.name}
    for workers in sorted({0, args.workers}):
        start = time.perf_counter()
        record(source, stimuli, batch_size=batch, device=device, reduction="mean", workers=workers, progress=False)
        out[f"mean_workers_{workers}_s"] = round(time.perf_counter() - start, 2)
    model = source.model.to(device).eval()
    _, times, readouts = plan(model, None, None, None)
    preloaded = torch.stack([source.preprocess(stimuli.image(i)) for i in range(len(stimuli))]).to(device)
    with torch.no_grad():
        model(preloaded[:batch], readout_time=readouts, until=max(times))
        sync(device)
        start = time.perf_counter()
        for s in range(0, len(stimuli), batch):
            model(preloaded[s:s + batch], readout_time=readouts, until=max(times))
        sync(device)
    out["plain_forward_preloaded_s"] = round(time.perf_counter() - start, 2)
    best = min(out[f"mean_workers_{w}_s"] for w in {0, args.workers})
    out["mean_images_per_s"] = round(len(stimuli) / best, 1)
    try:
        import h5netcdf  # noqa: F401
    except ImportError:
        out["unreduced_to_disk"] = {"skipped": "h5netcdf is not installed (carry its wheel: benchmarks/README.md)"}
        return out
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        path = Path(tmp) / "rec.nc"
        start = time.perf_counter()
        try:  # the rates above stay written if this fails
            record(source, stimuli, path, batch_size=batch, device=device, workers=args.workers, progress=False)
        except Exception as err:
            out["unreduced_to_disk"] = {"error": f"{type(err).__name__}: {err}"}
            return out
        seconds = time.perf_counter() - start
        size = path.stat().st_size
        path.unlink()
        block = np.ones(64 * 2**20 // 4, dtype=np.float32)
        start = time.perf_counter()
        with open(Path(tmp) / "raw.bin", "wb") as f:
            for _ in range(max(1, size // block.nbytes)):
                block.tofile(f)
            f.flush()
            os.fsync(f.fileno())
        raw = time.perf_counter() - start
    out["unreduced_to_disk"] = {"bytes": size, "record_s": round(seconds, 2), "raw_write_same_bytes_s": round(raw, 2),
                                "ratio": round(seconds / raw, 2)}
    return out


# --- a short Table 1 run -------------------------------------------------------------------------
TABLE1_READOUTS = (5, 10)  # Table 1: 7.44% (t = 5) and 6.86% (t = 10) on CIFAR-10 after 60 epochs
OVERHEAD_S = 30  # per run: decoding 60,000 JPEGs, warm-up and graph capture, writing the weights


def table1(args, check: Check, images_per_s: float | None) -> dict:
    """The 3-state FRNN of Table 1 at t = 5, then t = 10: the paper's recipe (batch 64, lr 0.01, momentum
    0.9, crop + flip) with its lr schedule compressed to the epochs the budget allows, the same number for
    both where time allows; bf16 weights exported to ``--out``."""
    cuda = args.device.startswith("cuda")
    # the pack that travels may hold fewer than the 50,000 training images (benchmarks/gpu_check.sh prepare)
    n_train = args.train_images if args.quick else len(data.folder_samples(Path(args.data_root) / "train")[0])
    speed10 = 0.85 * (images_per_s or 1000)  # measured at t = 10 on a subset; a margin for validation
    epoch_s = {10: n_train / speed10, 5: n_train / (1.8 * speed10)}  # t = 5 does about half the work
    epochs = int((check.left() - len(TABLE1_READOUTS) * OVERHEAD_S) // sum(epoch_s.values()))
    epochs = min(epochs, args.table1_epochs)
    if epochs < 1:
        return {"skipped": f"one epoch of both takes about {sum(epoch_s.values()):.0f} s; {check.left():.0f} s left"}
    out = {"note": "JPEG CIFAR-10 from ../shared/data (not the original pickles); the paper's recipe (batch 64, "
                   "lr 0.01, momentum 0.9, pad-4 crop + flip) with its schedule (lr / 10 after epochs 40 and 50 "
                   "of 60) compressed to the epochs run; bf16 autocast, CUDA graphs, data on the device. "
                   "Table 1 after 60 epochs: 7.44% (t=5), 6.86% (t=10)", "train_images": n_train}
    for readout in TABLE1_READOUTS:
        if readout == 10 and out.get("t=5", {}).get("seconds_per_epoch"):  # re-plan from what t = 5 took
            fits = int((check.left() - OVERHEAD_S) // (2 * out["t=5"]["seconds_per_epoch"]))
            epochs = min(epochs, fits)
            if epochs < 1:
                out["t=10"] = {"skipped": f"{check.left():.0f} s left"}
                break
        try:
            out[f"t={readout}"] = _table1_run(args, readout, epochs, cuda)
        except Exception as err:  # written down beside the other readout's result
            out[f"t={readout}"] = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()[-2000:]}
        check.record("table1", out)  # a run cut short keeps the first readout's result
    return out


def _table1_run(args, readout: int, epochs: int, cuda: bool) -> dict:
    from visrecur.artifacts.checkpoint import export_weights
    from visrecur.training.config import build_config, paper_lr_steps
    from visrecur.training import train

    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        overrides = {"readout_time": readout, **({"channels": list(args.channels)} if args.channels else {})}
        cfg = build_config("cifar10", model="frnn_3state_shared", data_root=args.data_root, out=tmp,
                           epochs=epochs, lr_steps=paper_lr_steps(epochs), device=args.device,
                           cuda_graphs=cuda, progress=False, model_overrides=overrides,
                           limit_train=args.train_images if args.quick else None,
                           limit_val=args.train_images // 4 if args.quick else None)
        start = time.perf_counter()
        payload = train(cfg)
        seconds = time.perf_counter() - start
        weights = Path(args.out) / f"frnn_3state_shared_t{readout}_cifar10.pt"
        export_weights(Path(tmp) / "checkpoint.pt", weights, dtype=torch.bfloat16)
    return {"epochs": epochs, "lr_steps": list(cfg.lr_steps), "seconds": round(seconds, 1),
            "seconds_per_epoch": round(seconds / epochs, 1), "metrics": payload.metrics if payload else None,
            "weights": weights.name, "weights_mb": round(weights.stat().st_size / 2**20, 2)}


def ratios(results: dict) -> dict:
    """The side-by-side comparisons, as ratios (> 1: the first named is faster)."""
    sections, out = results["sections"], {}
    training_ = sections.get("training") or {}
    for model_key, block in training_.items():
        if not isinstance(block, dict) or "variants" not in block:
            continue
        v = {k: r.get("images_per_s") for k, r in block["variants"].items()}

        def ratio(a, b):
            return round(v[a] / v[b], 2) if v.get(a) and v.get(b) else None
        keys = sorted({int(k.split()[0][1:]) for k in v})
        small, large = keys[0], keys[-1]
        out[model_key] = {
            "device/host (b%d bf16)" % small: ratio(f"b{small} device bf16", f"b{small} host bf16"),
            "device/loader (b%d bf16)" % small: ratio(f"b{small} device bf16", f"b{small} loader bf16"),
            "host/host+reads (b%d bf16)" % small: ratio(f"b{small} host bf16", f"b{small} host+reads bf16"),
            "device/static (b%d bf16)" % small: ratio(f"b{small} device bf16", f"b{small} static bf16"),
            "bf16/fp32 (b%d device)" % small: ratio(f"b{small} device bf16", f"b{small} device fp32"),
            "graphs/eager (b%d device bf16)" % small: ratio(f"b{small} device bf16 graphs", f"b{small} device bf16"),
            "graphs/eager (b%d device bf16)" % large: ratio(f"b{large} device bf16 graphs", f"b{large} device bf16"),
            "channels-last/NCHW (b%d device bf16 graphs)" % small: ratio(f"b{small} device bf16 graphs channels-last",
                                                                         f"b{small} device bf16 graphs"),
            "channels-last/NCHW (b%d device bf16 graphs)" % large: ratio(f"b{large} device bf16 graphs channels-last",
                                                                         f"b{large} device bf16 graphs"),
            "regions/none (b%d device bf16 graphs)" % small: ratio(f"b{small} device bf16 graphs regions",
                                                                   f"b{small} device bf16 graphs"),
            "regions/none (b%d device bf16 graphs)" % large: ratio(f"b{large} device bf16 graphs regions",
                                                                   f"b{large} device bf16 graphs"),
            "device/host (b%d bf16)" % large: ratio(f"b{large} device bf16", f"b{large} host bf16")}
    rec = sections.get("recording") or {}
    keys = sorted(k for k in rec if k.startswith("mean_workers_"))
    if len(keys) == 2:
        out["recording workers 0 / N (time)"] = round(rec[keys[0]] / rec[keys[1]], 2)
    if keys and rec.get("plain_forward_preloaded_s"):
        out["recording / plain forward (time, best workers)"] = round(
            min(rec[k] for k in keys) / rec["plain_forward_preloaded_s"], 2)
    for mode, row in (sections.get("compile") or {}).items():
        if isinstance(row, dict) and row.get("images_per_s_static_batch") and row.get("eager_images_per_s_static_batch"):
            out[f"compile {mode}/eager (static batch)"] = round(row["images_per_s_static_batch"]
                                                                / row["eager_images_per_s_static_batch"], 2)
    return out


def parse_args(argv=None):
    from visrecur.cli import ArgumentParser

    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", help="CIFAR-10 as an ImageFolder tree (train/ and test/); default: "
                                       "cifar10-jpeg in $VISRECUR_DATA or ../shared/data")
    p.add_argument("--out", default=os.environ.get("OUT", "gpu_check_out"), help="folder for gpu_check.json")
    p.add_argument("--device", default="cuda")
    p.add_argument("--dry-run", action="store_true", help="= --device cpu --quick")
    p.add_argument("--quick", action="store_true", help="tiny settings (a CPU dry run)")
    p.add_argument("--budget", type=float, help="seconds for everything; sections that would not fit are "
                                                "skipped (default 540; 3600 with --quick)")
    p.add_argument("--repeats", type=int, default=1, help="interleaved runs of every training variant (medians)")
    p.add_argument("--steps", type=int, help="timed SGD steps per variant (default 60; 5 with --quick)")
    p.add_argument("--warmup", type=int, help="untimed steps first, cuDNN picks its algorithms (default 10; 2 "
                                              "with --quick)")
    p.add_argument("--batch-sizes", type=int, nargs=2, default=[64, 512])
    p.add_argument("--channels", type=int, nargs="+", help="smaller models (quick runs): channels per state")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--profile-steps", type=int, default=3, help="training steps the profile section records")
    p.add_argument("--train-images", type=int, default=25_000, help="decoded training images for throughput")
    p.add_argument("--workers", type=int, default=min(8, max(1, (os.cpu_count() or 2) - 1)))
    p.add_argument("--record-images", type=int, default=10_000)
    p.add_argument("--record-batch", type=int, default=512)
    p.add_argument("--compile-timeout", type=int, default=90, help="seconds for each compile child; 0: skip")
    p.add_argument("--compile-modes", nargs="+", choices=["regional", "whole"], default=["regional"],
                   help="regional: each transition block (visrecur.nn.blocks.compile_regions); whole: the whole "
                        "model, which did not compile in 70 s on an H100 machine")
    p.add_argument("--timed-models", type=int, default=1, choices=range(1, len(MODELS) + 1),
                   help=f"how many of {[f'{m} t={t}' for m, t in MODELS]} the training section times")
    p.add_argument("--table1-epochs", type=int, default=60, help="at most this many epochs of the Table 1 run")
    p.add_argument("--skip", nargs="*", default=[], help="sections to leave out")
    p.add_argument("--scratch", default=None, help="folder for temporary outputs (default: the system's)")
    p.add_argument("--child-compile", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile-mode", choices=["whole", "regional"], default="regional", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.data_root is None:
        from visrecur.artifacts.io import data_root

        args.data_root = str(data_root() / "cifar10-jpeg")
    if args.dry_run:
        args.device, args.quick = "cpu", True
    if args.budget is None:
        args.budget = 3600 if args.quick else 540
    args.steps = args.steps or (5 if args.quick else 60)
    args.warmup = args.warmup or (2 if args.quick else 10)
    if args.quick:
        global COMMAND_TIMEOUT
        COMMAND_TIMEOUT = 900
        args.batch_sizes = [min(args.batch_sizes[0], 16), min(args.batch_sizes[1], 64)]
        args.channels = args.channels or [8, 16, 32]
        args.train_images = min(args.train_images, 512)
        args.record_images, args.record_batch = min(args.record_images, 256), min(args.record_batch, 64)
        args.workers = min(args.workers, 2)
        args.table1_epochs = min(args.table1_epochs, 1)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child_compile:
        print(json.dumps(compile_child(args)))
        return 0
    if not (Path(args.data_root) / "train").is_dir():
        print(f"error: no CIFAR-10 image folder at {args.data_root!r} (train/ and test/); pass --data-root",
              file=sys.stderr)
        return 2
    from visrecur.distributed import parse_device

    args.device = parse_device(args.device)
    if args.device.startswith("cuda"):
        torch.cuda.set_device(args.device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    check = Check(Path(args.out) / "gpu_check.json", args.budget)
    check.results["environment"] = environment(args)
    check.save()
    print(json.dumps(check.results["environment"]), flush=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check_", dir=args.scratch))
    start = time.perf_counter()
    images, labels, _ = data.decode_folder(Path(args.data_root) / "train", args.train_images, 0, progress=False)
    check.results["decode_train_s"] = round(time.perf_counter() - start, 1)
    beside = None
    if args.compile_timeout > 0 and "compile" not in args.skip:
        # beside the paths checks, which look at exit codes, not speed; joined before anything is timed
        beside = threading.Thread(target=check.section, args=("compile", compiled, args), daemon=True)
        beside.start()
    if "paths" not in args.skip:
        check.section("paths", paths, args, work, need=30)
    if beside is not None:
        beside.join()
    sections = [("equivalence", equivalence, (args, images, labels), 20),
                ("training", training, (args, images, labels), 60), ("profile", profile, (args, images, labels), 20),
                ("recording", recording, (args,), 30)]
    for name, fn, fn_args, need in sections:
        if name not in args.skip:
            check.section(name, fn, *fn_args, need=need)
    if "table1" not in args.skip:
        block = (check.results["sections"].get("training") or {}).get(f"{MODELS[0][0]} t={MODELS[0][1]}", {})
        rows = block.get("variants", {}) if isinstance(block, dict) else {}
        # the row that trains as Table 1 does: batch 64, data on the device, bf16, a CUDA graph (on a CPU: eager)
        like = f"b{args.batch_sizes[0]} device bf16{' graphs' if args.device.startswith('cuda') else ''}"
        check.section("table1", table1, args, check, (rows.get(like) or {}).get("images_per_s"))
    check.results["ratios"] = ratios(check.results)
    check.save()
    print(json.dumps(check.results["ratios"], indent=1))
    print(f"written: {check.path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
