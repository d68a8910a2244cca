"""--device words -> torch device strings, with GPUs faked (no GPU here): every rank gets an index."""
import pytest
import torch

from visrecur import InputError
from visrecur.distributed import parse_device


@pytest.fixture
def two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_plain_cuda_names_the_local_ranks_gpu(two_gpus):
    # torch.cuda.set_device("cuda") raises; "cuda:<local rank>" is what a rank must use
    assert parse_device("cuda") == "cuda:0"
    assert parse_device("cuda", local_rank=1) == "cuda:1"
    assert parse_device("CUDA:1") == "cuda:1"
    assert parse_device("auto", local_rank=1) == "cuda:1"
    with pytest.raises(InputError, match="only 2 GPU"):
        parse_device("cuda:2")


def test_cpu_only_machine():
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    assert parse_device("auto") == "cpu" and parse_device("cpu") == "cpu"
    with pytest.raises(InputError, match="no CUDA GPU is visible"):
        parse_device("cuda")
