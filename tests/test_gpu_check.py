"""benchmarks/gpu_check.py, the one script a session with a GPU runs, wired end to end on the CPU: its
Table 1 section trains t = 5 then t = 10 with the paper's schedule compressed, and exports bf16 weights
that load by path as the model they came from."""
import json
import sys
from pathlib import Path

import pytest
import torch

import visrecur

from training_fixtures import colour_folder

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cifar_size_folder(tmp_path_factory):
    """CIFAR-size (32x32) images of 10 classes told apart by colour: 8 training, 2 test images per class."""
    colours = [(25 * k, 255 - 25 * k, (80 * k) % 256) for k in range(10)]
    return colour_folder(tmp_path_factory.mktemp("colours"), (("train", 8), ("test", 2)), size=32, colours=colours)


@pytest.mark.slow  # trains / profiles training steps
def test_table1_section_trains_both_readouts_and_exports_loadable_bf16_weights(cifar_size_folder, tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    out = tmp_path / "out"
    code = gpu_check.main(["--dry-run", "--data-root", str(cifar_size_folder), "--out", str(out), "--train-images",
                           "40", "--channels", "4", "8", "8", "--compile-timeout", "0", "--scratch",
                           str(tmp_path), "--skip", "paths", "equivalence", "training", "recording"])
    assert code == 0
    results = json.loads((out / "gpu_check.json").read_text())
    table1 = results["sections"]["table1"]
    assert table1["train_images"] == 40  # --train-images with --dry-run; else counted in the folder
    for readout in (5, 10):
        run = table1[f"t={readout}"]
        assert run["epochs"] == 1 and run["lr_steps"] == []  # --dry-run: one epoch, too short to compress
        assert run["metrics"][-1]["train_images"] == 40
        assert f"val_err_t{readout}" in run["metrics"][-1] and f"val_err_t{readout + 1}" not in run["metrics"][-1]
        model = visrecur.load(out / run["weights"])
        assert model.spec.readout_time == readout and model.spec.name == "frnn_3state_shared"
        stored = torch.load(out / run["weights"], weights_only=True)
        assert {v.dtype for v in stored["model"].values() if v.is_floating_point()} == {torch.bfloat16}


class _Clock:
    """gpu_check.Check's interface, with the seconds left given in turn."""

    def __init__(self, *left):
        self.lefts, self.recorded = list(left), {}

    def left(self):
        return self.lefts.pop(0) if len(self.lefts) > 1 else self.lefts[0]

    def record(self, name, result):
        self.recorded[name] = dict(result)


@pytest.mark.parametrize("left_after_t5, t10_epochs", [(400, 9), (50, None)])
def test_table1_plans_epochs_from_the_measured_speed_and_replans_t10(monkeypatch, left_after_t5, t10_epochs):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    runs = []

    def fake_run(args, readout, epochs, cuda):
        runs.append((readout, epochs))
        return {"epochs": epochs, "seconds_per_epoch": 20.0}

    monkeypatch.setattr(gpu_check, "_table1_run", fake_run)
    args = gpu_check.parse_args(["--dry-run"])
    args.train_images, args.table1_epochs = 50_000, 60  # --dry-run caps both; a GPU run's values
    # 2,000 images/s measured at t = 10, planned at 85%: 50,000 / 1,700 = 29.4 s an epoch at t = 10 and
    # 50,000 / (1.8 * 1,700) = 16.3 s at t = 5; (600 s - 2 x 30 s overhead) / 45.75 s = 11.8 -> 11 epochs each
    clock = _Clock(600, left_after_t5)
    out = gpu_check.table1(args, clock, 2000.0)
    # t = 10 re-planned from t = 5's 20 s an epoch, twice that each: (400 - 30) // 40 = 9; (50 - 30) // 40 = 0
    assert runs[0] == (5, 11)
    if t10_epochs is None:
        assert runs == [(5, 11)] and "skipped" in out["t=10"]
    else:
        assert runs == [(5, 11), (10, t10_epochs)]
    assert clock.recorded["table1"]["t=5"]["epochs"] == 11  # written after each readout, not only at the end


def _gpu_check():
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    return gpu_check


@pytest.mark.parametrize("name, kind", [
    # kernel names as cuDNN, CUTLASS and ATen print them on Hopper and Ampere
    ("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16, __nv_bfloat16, float, false, true, (cudnnKernelDataType_t)0>",
     "layout copy"),
    ("void cudnn::ops::nhwcToNchwKernel<float, __nv_bfloat16, float, true, false>", "layout copy"),
    ("sm90_xmma_fprop_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nhwc_tilesize128x128x64_warpgroupsize1x1x1",
     "convolution"),
    ("sm80_xmma_dgrad_implicit_gemm_bf16bf16_bf16f32_f32_nhwckrsc_nchw_tilesize64x64x64_stage5", "convolution"),
    ("void cudnn::winograd_nonfused::winogradWgradData4x4<float, __half>", "convolution"),
    ("void cudnn::bn_fw_tr_1C11_singleread_NHWC<__nv_bfloat16, 512, true, 1, 2, 0>", "batch norm"),
    ("void at::native::batch_norm_collect_statistics_kernel<at::native::InvStd, c10::BFloat16, float, float, int>",
     "batch norm"),
    ("void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::MeanOps<float, float>>>",
     "reduction"),
    ("void at::native::(anonymous namespace)::upsample_nearest2d_out_frame<c10::BFloat16>", "pooling / resampling"),
    ("void at::native::(anonymous namespace)::avg_pool2d_out_cuda_frame<c10::BFloat16, float>",
     "pooling / resampling"),
    ("void at::native::vectorized_elementwise_kernel<4, at::native::launch_clamp_scalar, std::array<char*, 2>>",
     "elementwise"),
    ("void at::native::multi_tensor_apply_kernel<at::native::TensorListMetadata<3>, FusedSgdMathFunctor>", "other"),
    ("sm90_xmma_gemm_bf16bf16_bf16f32_f32_tn_n_tilesize128x128x64_warpgroupsize1x1x1_execute_segment_k_off_cublas",
     "matmul"),
    ("void at::native::unrolled_elementwise_kernel<at::native::direct_copy_kernel_cuda(at::TensorIteratorBase&)",
     "copy / cast"),
    ("void at::native::(anonymous namespace)::CatArrayBatchedCopy<at::native::(anonymous namespace)::OpaqueType<4>>",
     "copy / cast"),
])
def test_kernel_kinds_tell_layout_copies_from_convolutions(name, kind):
    assert _gpu_check().kernel_kind(name) == kind


@pytest.mark.slow  # trains / profiles training steps
def test_profile_section_shares_add_up_and_see_the_backward_pass(cifar_size_folder, tmp_path):
    gpu_check = _gpu_check()
    out = tmp_path / "out"
    code = gpu_check.main(["--dry-run", "--data-root", str(cifar_size_folder), "--out", str(out), "--train-images",
                           "40", "--channels", "4", "8", "8", "--batch-sizes", "4", "8", "--profile-steps", "1",
                           "--compile-timeout", "0", "--skip", "paths", "equivalence", "training", "recording",
                           "table1"])
    assert code == 0
    section = json.loads((out / "gpu_check.json").read_text())["sections"]["profile"]
    assert set(section) >= {"b4", "b8"} and "error" not in section
    for row in (section["b4"], section["b8"]):
        assert abs(sum(row["share_pct_by_kind"].values()) - 100) < 1  # every operator's time counted once
        shares = [c["share_pct"] for c in row["costliest"]]
        assert shares == sorted(shares, reverse=True)
        names = {c["name"] for c in row["costliest"]}
        assert "aten::convolution_backward" in names  # a training step: the backward pass is in the profile
        assert row["share_pct_by_kind"]["convolution"] == max(row["share_pct_by_kind"].values())


class _Event:
    """What gpu_check reads of a torch.profiler FunctionEvent."""

    def __init__(self, name, us, device=True, annotation=False):
        self.name, self.is_user_annotation = name, annotation
        self.device_type = torch.autograd.DeviceType.CUDA if device else torch.autograd.DeviceType.CPU
        self.self_cpu_time_total = us
        self.time_range = type("Interval", (), {"elapsed_us": lambda _self: us})()


def test_time_shares_count_kernels_once_and_skip_annotations():
    """Device time by kind from hand-made events: 2 steps of a 60/30/10 us split; the optimiser's
    record_function span on the GPU timeline (it covers kernels already counted) and host-side ATen
    operators stay out of a CUDA profile."""
    events = [_Event("sm90_xmma_fprop_implicit_gemm_bf16", 50), _Event("sm90_xmma_dgrad_implicit_gemm_bf16", 70),
              _Event("void cudnn::ops::nchwToNhwcKernel<__nv_bfloat16>", 60),
              _Event("void at::native::batch_norm_collect_statistics_kernel<float>", 20),
              _Event("Optimizer.step#SGD.step", 500, annotation=True),
              _Event("aten::convolution_backward", 900, device=False)]
    shares = _gpu_check()._time_shares(events, cuda=True, steps=2)
    assert shares["ms_per_step"] == 0.1  # (50 + 70 + 60 + 20) us / 2 steps
    assert shares["share_pct_by_kind"] == {"convolution": 60.0, "layout copy": 30.0, "batch norm": 10.0}
    assert [c["name"][:18] for c in shares["costliest"]] == ["sm90_xmma_dgrad_im", "void cudnn::ops::n",
                                                           "sm90_xmma_fprop_im", "void at::native::b"]
    cpu = _gpu_check()._time_shares(events, cuda=False, steps=1)  # a CPU profile: ATen operators only
    assert cpu["share_pct_by_kind"] == {"convolution": 100.0} and cpu["ms_per_step"] == 0.9
