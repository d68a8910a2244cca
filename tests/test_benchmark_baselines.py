"""The hand-written baselines of benchmarks/ compute what the visrecur models compute: a benchmark whose
equality check fails measures nothing (the hand-written FRNN once kept an old resampling unnoticed)."""
import sys
from pathlib import Path

import torch

from visrecur.architecture import zoo

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_handwritten_frnn_equals_frnn_4state_shared():
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from bench_graph_overhead import copy_frnn4
        from handwritten_frnn import HandFRNN4
    finally:
        sys.path.remove(str(BENCHMARKS))
    torch.manual_seed(0)
    model, hand = zoo.build("frnn_4state_shared").train(), HandFRNN4().train()
    copy_frnn4(model, hand)
    x = torch.randn(4, 3, 32, 32)
    torch.testing.assert_close(model(x), hand(x), rtol=1e-4, atol=1e-4)  # training mode: batch statistics
    model.eval(), hand.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(x), hand(x), rtol=1e-4, atol=1e-4)  # the running statistics just made
