"""CORnet-Z, CORnet-RT and CORnet-S (Kubilius et al. 2018, 2019) as plain ``nn.Module``s, randomly
initialised, with the submodule names of the public CORnet implementation, so that its checkpoint files
load by their own keys (``load_cornet_state_dict`` drops the ``module.`` prefix that DataParallel adds).

Each area ends in an ``output`` identity module, called once per step of the area: the adapter hooks
``V1.output`` .. ``IT.output`` (as Brain-Score's CORnet wrappers do) and the decoder's ``linear``.
Written from the papers and the public layout description; the code is this project's own.
"""
from __future__ import annotations

from collections import OrderedDict

import torch.nn.functional as F
from torch import nn

AREAS = ("V1", "V2", "V4", "IT")


def _decoder(channels: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(OrderedDict([("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
                                      ("linear", nn.Linear(channels, num_classes)), ("output", nn.Identity())]))


# --- CORnet-Z: one conv + ReLU + max-pool per area, feedforward ------------------------------------
class CORblockZ(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=3, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.output = nn.Identity()

    def forward(self, x):
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.V1 = CORblockZ(3, 64, kernel_size=7, stride=2)
        self.V2 = CORblockZ(64, 128)
        self.V4 = CORblockZ(128, 256)
        self.IT = CORblockZ(256, 512)
        self.decoder = _decoder(512, num_classes)

    def forward(self, x):
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# --- CORnet-RT: every area recurrent (input + its own state), all areas updated at every step --------
class CORblockRT(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size=1, stride=1):
        super().__init__()
        self.in_channels, self.out_channels, self.stride, self.kernel_size = in_channels, out_channels, stride, kernel_size
        self.conv_input = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, out_channels)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, out_channels)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = nn.Identity()

    def out_size(self, size: int) -> int:
        """The spatial size this area's input convolution makes of ``size``."""
        return (size + 2 * (self.kernel_size // 2) - self.kernel_size) // self.stride + 1

    def forward(self, inp=None, state=None, batch_size=None, size=None):
        """(output, state). ``inp`` None (no input has reached the area yet): zeros of the area's size."""
        if inp is None:
            inp = self.conv_input.weight.new_zeros(batch_size, self.out_channels, size, size)
        else:
            inp = self.nonlin_input(self.norm_input(self.conv_input(inp)))
        skip = inp if state is None else inp + state
        state = self.output(self.nonlin1(self.norm1(self.conv1(skip))))
        return state, state


class CORnetRT(nn.Module):
    def __init__(self, times: int = 5, num_classes: int = 1000):
        super().__init__()
        self.times = times
        self.V1 = CORblockRT(3, 64, kernel_size=7, stride=4)
        self.V2 = CORblockRT(64, 128, stride=2)
        self.V4 = CORblockRT(128, 256, stride=2)
        self.IT = CORblockRT(256, 512, stride=2)
        self.decoder = _decoder(512, num_classes)

    def forward(self, x):
        sizes, size = {}, x.shape[-1]
        for area in AREAS:
            size = sizes[area] = getattr(self, area).out_size(size)
        # step 0: only V1 sees the image; the other areas start from zero input
        outputs, states = {"inp": x}, {}
        for area in AREAS:
            outputs[area], states[area] = getattr(self, area)(x if area == "V1" else None, batch_size=len(x),
                                                              size=sizes[area])
        for _ in range(1, self.times):
            new = {"inp": x}
            for below, area in zip(("inp",) + AREAS, AREAS):
                new[area], states[area] = getattr(self, area)(outputs[below], states[area])
            outputs = new
        return self.decoder(outputs["IT"])


# --- CORnet-S: V1 feedforward; V2, V4, IT recurrent bottleneck blocks run several times -------------
class CORblockS(nn.Module):
    scale = 4  # bottleneck expansion

    def __init__(self, in_channels, out_channels, times=1):
        super().__init__()
        self.times = times
        wide = out_channels * self.scale
        self.conv_input = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.skip = nn.Conv2d(out_channels, out_channels, 1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(out_channels)
        self.conv1 = nn.Conv2d(out_channels, wide, 1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, 3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, out_channels, 1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = nn.Identity()
        for t in range(times):  # a batch norm per step (the public checkpoints' norm1_0, norm2_0, ...)
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(out_channels))

    def forward(self, inp):
        x = self.conv_input(inp)
        for t in range(self.times):
            # the first step halves the size (strided conv2, strided skip); later steps keep it
            skip, stride = (self.norm_skip(self.skip(x)), 2) if t == 0 else (x, 1)
            x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
            x = F.conv2d(x, self.conv2.weight, None, stride, 1)
            x = self.nonlin2(getattr(self, f"norm2_{t}")(x))
            x = getattr(self, f"norm3_{t}")(self.conv3(x))
            x = self.nonlin3(x + skip)
            x = self.output(x)
        return x


class CORnetS(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.V1 = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)), ("norm1", nn.BatchNorm2d(64)),
            ("nonlin1", nn.ReLU(inplace=True)), ("pool", nn.MaxPool2d(3, stride=2, padding=1)),
            ("conv2", nn.Conv2d(64, 64, 3, padding=1, bias=False)), ("norm2", nn.BatchNorm2d(64)),
            ("nonlin2", nn.ReLU(inplace=True)), ("output", nn.Identity())]))
        self.V2 = CORblockS(64, 128, times=2)
        self.V4 = CORblockS(128, 256, times=4)
        self.IT = CORblockS(256, 512, times=2)
        self.decoder = _decoder(512, num_classes)

    def forward(self, x):
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


def load_cornet_state_dict(model: nn.Module, state_dict: dict, strict: bool = True):
    """Load a public CORnet checkpoint's ``state_dict`` (the ``'state_dict'`` entry of its file, read
    with ``torch.load(path, weights_only=True)``) by its own key names; the ``module.`` prefix that
    DataParallel adds is dropped."""
    from visrecur.errors import CheckpointError

    keys = {k.removeprefix("module."): v for k, v in state_dict.items()}
    try:
        return model.load_state_dict(keys, strict=strict)
    except RuntimeError as err:
        first = str(err).splitlines()[1].strip() if len(str(err).splitlines()) > 1 else str(err)
        raise CheckpointError(f"the state dict does not fit {type(model).__name__}: {first}") from None


def init_weights(module: nn.Module) -> None:
    """He-normal convolutions, unit/zero norms and zero linear biases, like most ImageNet models' defaults."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.zeros_(m.bias)


__all__ = ["CORnetRT", "CORnetS", "CORnetZ", "load_cornet_state_dict"]
