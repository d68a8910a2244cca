"""A 4-state FRNN written out by hand (no visrecur): the same convolutions, batch norms and schedule as
visrecur's frnn_4state_shared, as the baseline for measuring what the graph machinery costs."""
import torch.nn.functional as F
from torch import nn


class HandBlock(nn.Module):
    """Two 3x3 (de)convolutions striding by at most 2; a factor beyond 4 is average pooling of the input
    (down) or nearest-neighbour upsampling of the output (up), as visrecur's default resampling."""

    def __init__(self, cin, cout, factor, up, steps):
        super().__init__()
        mid = round((cin + cout) / 2)
        strides = [2, 2] if factor >= 4 else [factor, 1]
        self.rest, self.up = max(1, factor // 4), up
        conv = (lambda i, o, s: nn.ConvTranspose2d(i, o, 3, s, 1, output_padding=s - 1, bias=False)) if up else \
            (lambda i, o, s: nn.Conv2d(i, o, 3, s, 1, bias=False))
        self.conv1, self.conv2 = conv(cin, mid, strides[0]), conv(mid, cout, strides[1])
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(cin, affine=False) for _ in range(steps + 1))
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(mid, affine=False) for _ in range(steps + 1))

    def forward(self, x, t):
        if self.rest > 1 and not self.up:
            x = F.avg_pool2d(x, self.rest)
        out = self.conv2(F.relu(self.bn2[t](self.conv1(F.relu(self.bn1[t](x))))))
        return F.interpolate(out, scale_factor=self.rest, mode="nearest") if self.rest > 1 and self.up else out


class HandFRNN4(nn.Module):
    def __init__(self, channels=(8, 16, 32, 64), steps=5, classes=10):
        super().__init__()
        c = channels
        self.pre = nn.Sequential(nn.Conv2d(3, c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(),
                                 nn.Conv2d(c[0], c[0], 3, 1, 1, bias=False), nn.BatchNorm2d(c[0]), nn.ReLU(),
                                 nn.Conv2d(c[0], c[0], 3, 1, 1, bias=False))
        self.blocks = nn.ModuleDict({f"{i}{j}": HandBlock(c[i], c[j], 2 ** abs(j - i) if i != j else 1, j < i, steps)
                                     for i in range(4) for j in range(4)})
        self.post_bn = nn.ModuleList(nn.BatchNorm2d(c[3]) for _ in range(steps + 1))
        self.fc = nn.Linear(c[3], classes)

    def forward(self, x, readout_time=5):
        h = [self.pre(x), None, None, None]
        for t in range(1, readout_time):
            new = list(h)
            for j in range(4):
                outs = [self.blocks[f"{i}{j}"](h[i], t) for i in range(4) if h[i] is not None]
                total = sum(outs) * (1.0 / len(outs)) if len(outs) > 1 else outs[0]
                new[j] = total if h[j] is None else h[j] + total
            h = new
        return self.fc(F.relu(self.post_bn[readout_time](h[3])).mean(dim=(2, 3)))
