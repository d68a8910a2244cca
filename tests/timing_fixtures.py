"""Tiny inputs for the latency and masking tests: a checkpoint of a 2-state FRNN on 8x8 images whose
statistics were estimated at readout times 2 and 3, and a 3-class image folder of that size."""
from pathlib import Path

import torch

from visrecur import Preprocess
from visrecur.architecture import zoo
from visrecur.artifacts.checkpoint import FORMAT

from training_fixtures import colour_folder

PREPROCESS = Preprocess((8, 8), (0.5,) * 3, (0.25,) * 3)


def tiny_model(readout_time=3, seed=0, **overrides):
    """Statistics estimated at steps 1..readout_time-1 and readout times 2..readout_time (pre-net
    included, so that its batch norms turn a blank frame into a non-zero input)."""
    torch.manual_seed(seed)
    model = zoo.build("frnn_2state_shared", channels=(2, 3), readout_time=readout_time, input_size=8,
                      prenet="conv3", **overrides)
    model.train()
    model(torch.randn(16, 3, 8, 8) * 2 + 0.5, readout_time=list(range(2, readout_time + 1)))
    model.eval()
    model.preprocess = PREPROCESS
    return model


def tiny_checkpoint(path: Path, **overrides) -> Path:
    model = tiny_model(**overrides)
    torch.save({"format": FORMAT, "model": model.state_dict(), "spec": model.spec.to_dict(),
                 "preprocess": PREPROCESS.to_dict()}, path)
    return path


def tiny_folder(root: Path, per_class: int = 4) -> Path:
    """test/c0..c2 with 8x8 PNGs, one colour per class plus noise."""
    return colour_folder(root, (("test", per_class),), noise=60, prefix="c")


def run_notebook(notebook: Path, results: Path, figures: Path, monkeypatch) -> dict:
    """Execute a notebook's code cells as python -m figures would, headless."""
    import json

    import matplotlib

    matplotlib.use("Agg")
    monkeypatch.setenv("VISRECUR_RESULTS", str(results))
    monkeypatch.setenv("VISRECUR_FIGURES", str(figures))
    namespace = {}
    for cell in [c for c in json.loads(notebook.read_text())["cells"] if c["cell_type"] == "code"]:
        exec(compile("".join(cell["source"]), notebook.name, "exec"), namespace)
    return namespace


def assert_refuses(main, args, message, out: Path, capsys) -> None:
    """``main(args + --out-dir out)`` exits 2 with one ``error:`` line containing ``message``, writing nothing."""
    try:
        code = main(args + ["--out-dir", str(out)])
    except SystemExit as exit_:   # argparse's own checks
        code = exit_.code
    assert code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0]
    assert not out.exists()
