"""torchrun helpers shared by training and recording: rank, world size, barrier, sums over ranks."""
from __future__ import annotations

import os

import torch


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup_distributed(device: str = "cpu") -> tuple[int, int, int]:
    """(rank, world size, local rank); under torchrun, joins the process group once (NCCL for CUDA
    devices, gloo otherwise)."""
    world = world_size()
    if world == 1:
        return 0, 1, 0
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
    return dist.get_rank(), world, int(os.environ.get("LOCAL_RANK", "0"))


def barrier(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()


def all_sum(values, device) -> list[float]:
    """Element-wise sum over ranks (the values themselves in a single process), as a list of floats.
    ``values``: numbers, or a tensor of them (on ``device``: read from it once, after the sum)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return values.tolist() if isinstance(values, torch.Tensor) else list(values)
    tensor = torch.as_tensor(values, dtype=torch.float64, device=device).clone()
    dist.all_reduce(tensor)
    return tensor.tolist()


def shutdown(world: int) -> None:
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def parse_device(requested: str, local_rank: int = 0) -> str:
    """A device word of ``--device`` -> a torch device string, or one clear error: ``cpu``, ``cuda``
    (-> ``cuda:<local rank>``), ``cuda:N`` (N below the number of visible GPUs) or ``auto`` (``cuda:<local rank>`` if a GPU is
    visible, else ``cpu``). Shared by training and recording."""
    from visrecur.errors import InputError

    word = str(requested).strip().lower()
    if word == "auto":
        return f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    if word == "cpu":
        return "cpu"
    kind, _, index = word.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise InputError(f"--device {requested!r} not understood; use cpu, cuda, cuda:N or auto")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise InputError(f"--device {requested} asked for, but no CUDA GPU is visible; use --device cpu")
    if index and int(index) >= count:
        raise InputError(f"--device {requested} asked for, but only {count} GPU(s) are visible (cuda:0.."
                         f"cuda:{count - 1}); use one of those or --device cpu")
    # plain "cuda": this process's GPU (torchrun's local rank), with an index torch.cuda.set_device accepts
    return word if index else f"cuda:{local_rank % count}"
