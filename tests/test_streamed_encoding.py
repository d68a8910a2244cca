"""Streamed time-resolved encoding (THINGS scale): the same numbers as scikit-learn's PCA + ridge run
fold by fold in memory, the planted latencies found, the same result on a dask.distributed cluster, and a
MEG store with a missing chunk refused."""
import warnings
from pathlib import Path

import numpy as np
import pytest

from visrecur.neural import synthetic
from visrecur.neural.errors import NeuralDataError
from visrecur.neural.streamed_encoding import _folds, open_meg, streamed_encoding

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
TIMES = np.arange(-100.0, 410.0, 10.0)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    d = tmp_path_factory.mktemp("things")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        planted = synthetic.write_planted_things(d / "rec.zarr", d / "meg.zarr", 150, n_sensors=4, times_ms=TIMES,
                                                 channels=2, size=4, rank=4, signal=2.0, chunk=40, seed=1)
    return d / "rec.zarr", d / "meg.zarr", planted


def test_equals_sklearn_pca_and_ridge_per_fold(stores):
    from sklearn.decomposition import PCA
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    from visrecur.artifacts.recordings import open_recording

    rec_path, meg_path, _ = stores
    ours = streamed_encoding(rec_path, meg_path, n_components=5, n_folds=4, alphas=[3.0], chunk=32, seed=2)
    rec = open_recording(rec_path)
    y = open_meg(meg_path)[0][:].astype(np.float64).reshape(150, -1)
    fold = _folds(150, 4, 2)
    for step in (0, 2):  # the first and the last step
        x = rec["IT"].sel(time=step).values.reshape(150, -1).astype(np.float64)
        predicted = np.empty_like(y)
        for k in range(4):
            model = make_pipeline(PCA(5, svd_solver="full"), Ridge(alpha=3.0)).fit(x[fold != k], y[fold != k])
            predicted[fold == k] = model.predict(x[fold == k])
        pc, yc = predicted - predicted.mean(0), y - y.mean(0)
        r = (pc * yc).sum(0) / np.sqrt((pc ** 2).sum(0) * (yc ** 2).sum(0))
        np.testing.assert_allclose(ours.r.sel(state="IT", time=step).values.ravel(), r, rtol=1e-7, atol=1e-9)


def test_planted_latencies_found(stores):
    rec_path, meg_path, planted = stores
    result = streamed_encoding(rec_path, meg_path, n_components=8, chunk=64)
    assert result.r.dims == ("state", "time", "sensor", "time_ms") and result.r.shape == (1, 3, 4, len(TIMES))
    np.testing.assert_allclose(result.peak_ms.sel(state="IT").values, [planted[s] for s in (0, 1, 2)], atol=10)
    assert float(result.score.sel(state="IT", time=1, time_ms=150)) > 0.5
    assert abs(float(result.score.sel(state="IT", time=1, time_ms=-100))) < 0.3  # before onset: no signal


@pytest.mark.slow
def test_same_result_on_a_distributed_cluster(stores):
    distributed = pytest.importorskip("distributed")
    rec_path, meg_path, _ = stores
    local = streamed_encoding(rec_path, meg_path, n_components=5, chunk=32)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    with cluster, distributed.Client(cluster) as client:
        remote = streamed_encoding(rec_path, meg_path, n_components=5, chunk=32, client=client)
    np.testing.assert_allclose(remote.r.values, local.r.values, rtol=1e-10, atol=1e-12)


def test_missing_chunk_is_refused(stores, tmp_path):
    import shutil
    rec_path, meg_path, _ = stores
    broken = tmp_path / "meg.zarr"
    shutil.copytree(meg_path, broken)
    # a chunk file of either zarr layout (v3: meg/c/0/0/0; v2: meg/0.0.0), not the array's metadata
    chunk = next(p for p in sorted((broken / "meg").rglob("*"))
                 if p.is_file() and p.name not in ("zarr.json", ".zarray", ".zattrs"))
    chunk.unlink()
    before = sorted(Path(tmp_path).rglob("*"))
    with pytest.raises(NeuralDataError, match=r"^meg.zarr:meg: 1 of its 4 chunks are missing .* write the array "
                                              r"again$"):
        streamed_encoding(rec_path, broken)
    assert sorted(Path(tmp_path).rglob("*")) == before  # nothing written
