"""One writer per output: a second run on the same output is refused in one line naming the first; the
output is always a complete recording or absent; a run that fails on its input removes its partial."""
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from test_record import random_stimuli, small_source

from visrecur import InputError, TimeStepError
from visrecur.artifacts.io import exclusive, lock_path
from visrecur.artifacts.recordings import SCHEMA, open_recording
from visrecur.recording import record
from visrecur.recording.stimuli import StimulusSet

REPO = Path(__file__).resolve().parents[1]


def test_a_second_writer_is_refused_naming_the_first(tmp_path):
    out = tmp_path / "rec.nc"
    with exclusive(out) as lock:
        assert lock == lock_path(out) == tmp_path / "rec.nc.lock"
        with pytest.raises(InputError) as refused:
            with exclusive(out):
                pass
        message = str(refused.value)
        assert "\n" not in message
        assert f"'{out}' is being written by another run (pid {os.getpid()} on " in message
        assert "pytest" in message or "python" in message  # the holder's command
        assert "choose another --output" in message
    assert not lock_path(out).exists()  # removed by its holder
    with exclusive(out):  # free again
        pass


def test_a_left_over_lock_file_does_not_block(tmp_path):
    out = tmp_path / "rec.zarr"
    lock_path(out).write_text('{"pid": 1, "host": "elsewhere", "command": "a run killed long ago"}\n')
    with exclusive(out):
        assert str(os.getpid()) in lock_path(out).read_text()  # the holder's own details now


def test_a_refused_run_leaves_no_folder_behind(tmp_path):
    out = tmp_path / "new" / "deeper" / "rec.nc"
    with exclusive(out):
        assert out.parent.is_dir()
    assert not (tmp_path / "new").exists()


def test_a_killed_holder_lets_go(tmp_path):
    out = tmp_path / "rec.nc"
    code = ("import sys, time; from visrecur.artifacts.io import exclusive\n"
            "with exclusive(sys.argv[1]):\n    print('held', flush=True); time.sleep(60)\n")
    holder = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(InputError, match=f"pid {holder.pid} on .*: python.* -c .*exclusive.* {out}\\); wait"):
            with exclusive(out):
                pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert lock_path(out).exists()  # a hard kill leaves the file ...
    with exclusive(out):  # ... but not the lock
        pass


def test_recording_while_another_run_writes_is_refused_and_touches_nothing(tmp_path):
    source, stimuli = small_source(), random_stimuli(3)
    out = tmp_path / "rec.nc"
    with exclusive(out):
        with pytest.raises(InputError, match="being written by another run"):
            record(source, stimuli, out, progress=False, overwrite=True)
        assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nc.lock"]
    record(source, stimuli, out, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.nc"]


def test_a_second_training_on_the_same_out_is_refused(tmp_path):
    from visrecur.training.config import TrainConfig
    from visrecur.training.loop import train

    out = tmp_path / "run"
    (tmp_path / "data" / "train").mkdir(parents=True)  # a data root that passes the early check, wherever run
    with exclusive(out / "checkpoint.pt", "--out"):
        with pytest.raises(InputError, match=f"'{out}/checkpoint.pt' is being written by another run \\(pid "
                                             f"{os.getpid()} .*choose another --out$"):
            train(TrainConfig(model="frnn_2state_shared", out=str(out), epochs=1, data_root=str(tmp_path / "data")))
        assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt.lock"]
    assert not out.exists()  # the folder made for the lock goes with it


def failing_stimuli(n, bad):
    """``n`` random images, the ``bad``-th of which fails to decode with the error a bad image gives (its
    stored bytes, which identify the set, are read without decoding: the failure comes midway)."""
    images = np.random.default_rng(0).integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)

    def image(i):
        if i == bad:
            raise InputError(f"stimulus {i} has 5 channels; give RGB images")
        return images[i]

    meta = pd.DataFrame({"stimulus_id": [f"s{i}" for i in range(n)]})
    return StimulusSet("failing", meta, image, "images, one bad", lambda i: images[i].tobytes())


@pytest.mark.parametrize("suffix, workers", [(".nc", 0), (".zarr", 0), pytest.param(".nc", 1, marks=pytest.mark.slow)])
def test_a_failure_on_the_input_midway_removes_its_partial(tmp_path, suffix, workers):
    source = small_source()
    out = tmp_path / f"rec{suffix}"
    with pytest.raises(InputError, match=r"^stimulus 4 has 5 channels; give RGB images \(the unfinished recording "
                                         r".*rec\..*partial.* was removed\)$"):
        record(source, failing_stimuli(6, bad=4), out, batch_size=2, progress=False, workers=workers)
    assert list(tmp_path.iterdir()) == []
    # the corrected command runs as it is, with no --overwrite or --resume
    record(source, random_stimuli(6), out, batch_size=2, progress=False)
    assert open_recording(out).attrs["schema"] == SCHEMA


def test_an_overflow_stops_at_its_step_and_removes_the_partial(tmp_path):
    import torch

    source = small_source()
    for block in source.model.blocks.values():  # every transition multiplies its output by 10^10
        block.register_forward_hook(lambda module, args, output: output * 1e10)
    seen = []
    out = tmp_path / "rec.nc"
    with source.model.observe(lambda name, t, v: seen.append((t, bool(torch.isfinite(v).all())))):
        with pytest.raises(TimeStepError, match=r"overflowed \(is not finite\) at step \d+, the first") as err:
            record(source, random_stimuli(2), out, times=list(range(40)), progress=False)
    first_bad = min(t for t, finite in seen if not finite)
    assert 0 < first_bad < 39
    assert f"at step {first_bad}, the first" in str(err.value)
    assert max(t for t, _ in seen) == first_bad  # no step past it was computed
    assert list(tmp_path.iterdir()) == []


# --- the race, with real processes (slow) -------------------------------------------------------------
def _complete(path: Path) -> bool:
    with open_recording(path) as ds:
        return (ds.attrs.get("schema") == SCHEMA and all(ds["stimulus"].values != "")
                and list(ds["time"].values) == [0, 1, 2, 3, 4] and bool(ds["recorded"].values.all())
                and all(ds.attrs.get(k) for k in ("model", "model_spec", "time_mapping", "created")))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_two_runs_started_together_give_one_complete_output_and_one_refusal(tmp_path, suffix):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    outcomes = []
    # 20 tries per format; CI's second stage (other library versions, same OS locks) sets fewer
    for attempt in range(int(os.environ.get("VISRECUR_RACE_TRIES", "20"))):
        out = tmp_path / f"rec{attempt}{suffix}"
        command = [sys.executable, "-m", "visrecur.record", "--model", "frnn_2state_shared", "--limit", "8",
                   "--batch-size", "2", "--no-progress", "--output", str(out)]
        runs = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                                 cwd=tmp_path) for _ in range(2)]
        results = [(run.wait(), run.stderr.read()) for run in runs]
        codes = sorted(code for code, _ in results)
        refusals = [err.strip().splitlines()[-1] for code, err in results if code == 2]
        assert codes == [0, 2], results
        assert refusals[0].startswith("error: "), refusals
        assert "is being written by another run (pid" in refusals[0] or "already exists" in refusals[0]
        assert _complete(out)
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(f"rec{attempt}{suffix}")) \
            == [out.name]  # no partial, no lock file
        outcomes.append("lock" if "another run" in refusals[0] else "exists")
    print(f"{suffix}: refused by the lock {outcomes.count('lock')}, by the finished output {outcomes.count('exists')}")
