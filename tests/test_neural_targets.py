"""Neural targets: the real 92-image files (skipped without the shared data) and the generic loader."""
import numpy as np
import pytest
import scipy.io
from scipy.spatial.distance import squareform

from visrecur.neural import IDS_92, NeuralDataError, RDMError, load_rdm_file, load_target
from visrecur.neural import synthetic
from visrecur.neural.targets import cichy2014_fmri
from visrecur.artifacts.io import data_root

DATA = data_root() / "92images"
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason="92-image RDMs not available (../shared/data/92images)")


@needs_data
def test_real_targets_are_labelled_with_recording_ids():
    evc, it = load_target("cichy2014_fmri_EVC"), load_target("cichy2014_fmri_IT")
    assert evc.dims == ("subject", "stimulus", "stimulus_b") and evc.shape == (15, 92, 92)
    assert list(it.stimulus.values) == IDS_92 == [f"92img_{k:02d}" for k in range(1, 93)]
    assert len(it.attrs["sha256"]) == 64 and "Cichy" in it.attrs["paper"]
    raw = np.load(DATA / "cichy2014_fmri_IT_RDMs.npz")["Net_RDM"]
    np.testing.assert_array_equal(it.sel(stimulus="92img_05", stimulus_b="92img_90").values, raw[:, 4, 89])
    monkey = load_target("kriegeskorte2008_monkey_IT")
    raw = scipy.io.loadmat(DATA / "Kriegeskorte_Neuron2008_supplementalData.mat", squeeze_me=True,
                           struct_as_record=False)["RDMs_mIT_hIT_fig1"]
    np.testing.assert_allclose(monkey[0].values, squareform(raw[0].RDM))
    assert monkey.sizes["subject"] == 1


@needs_data
def test_brain_rdms_mean_is_the_2008_human_it_rdm():
    subjects = load_target("kriegeskorte2008_human_IT_subjects")
    assert list(subjects.subject.values) == ["BE", "KO", "SN", "TI"]
    np.testing.assert_allclose(subjects.mean("subject").values, load_target("kriegeskorte2008_human_IT")[0].values,
                               atol=1e-6)
    assert subjects.attrs["independent"].startswith("no")


def test_missing_file_names_it_and_where_to_get_it(tmp_path):
    with pytest.raises(NeuralDataError, match=r"cichy2014_fmri_EVC_RDMs.npz not found at .*Net2Brain"):
        cichy2014_fmri("EVC", tmp_path)
    with pytest.raises(NeuralDataError, match="unknown target 'V9'"):
        load_target("V9")


def test_generic_loader_npz_npy_mat_and_condensed(tmp_path):
    rng = np.random.default_rng(0)
    ids = ["a", "b", "c", "d"]
    vectors = rng.random((3, 6))
    rdms = np.stack([squareform(v) for v in vectors])
    np.savez(tmp_path / "x.npz", rdms=rdms, stimulus_ids=np.array(ids))
    np.save(tmp_path / "x.npy", rdms)
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    scipy.io.savemat(tmp_path / "x.mat", {"condensed": vectors})
    for rdm in (load_rdm_file(tmp_path / "x.npz"), load_rdm_file(tmp_path / "x.npy", stimuli=tmp_path / "ids.txt"),
                load_target(str(tmp_path / "x.mat"), stimuli=ids)):
        assert rdm.dims == ("subject", "stimulus", "stimulus_b") and list(rdm.stimulus.values) == ids
        np.testing.assert_allclose(rdm.values, rdms)
    synthetic.write_matlab73(tmp_path / "v73.mat", {"Net_RDM": rdms})  # MATLAB's subjects x N x N
    np.testing.assert_allclose(load_rdm_file(tmp_path / "v73.mat", stimuli=ids).values, rdms)
    with pytest.raises(NeuralDataError, match="no stimulus list"):
        load_rdm_file(tmp_path / "x.npy")
    np.save(tmp_path / "bad.npy", rdms[:, :, :3])
    with pytest.raises(RDMError, match="square"):
        load_rdm_file(tmp_path / "bad.npy", stimuli=ids[:3])
