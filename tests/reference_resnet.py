"""Hand-written reference networks, independent of visrecur's graph machinery."""
import torch
import torch.nn.functional as F
from torch import nn


class PreActBlock(nn.Module):
    """He et al. (2016) pre-activation block; projection shortcut on the pre-activated input."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False) if stride != 1 or cin != cout else None

    def forward(self, x):
        out = F.relu(self.bn1(x))
        short = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv2(F.relu(self.bn2(self.conv1(out))))
        return out + short


class PreActResNet(nn.Module):
    """The CIFAR pre-activation ResNet with 6n + 2 layers (n=3: ResNet-20), widths 16/32/64."""

    def __init__(self, n=3, widths=(16, 32, 64), num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, widths[0], 3, 1, 1, bias=False)
        blocks, cin = [], widths[0]
        for stage, cout in enumerate(widths):
            for k in range(n):
                stride = 2 if stage > 0 and k == 0 else 1
                blocks.append(PreActBlock(cin, cout, stride))
                cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)

    def forward(self, x):
        x = self.conv(x)
        for block in self.blocks:
            x = block(x)
        return self.fc(F.relu(self.bn(x)).mean(dim=(2, 3)))


class SharedResidualStage(nn.Module):
    """Eq. 4: h_n = (K + I)^n h_0 with ONE residual function K (BN-ReLU-Conv-BN-ReLU-Conv) applied n
    times; each application has its own batch-norm statistics (time-specific BN), no BN affine."""

    def __init__(self, channels, steps, num_classes=10):
        super().__init__()
        self.conv = nn.Conv2d(3, channels, 3, 1, 1, bias=False)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn1 = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(steps))
        self.bn2 = nn.ModuleList(nn.BatchNorm2d(channels, affine=False) for _ in range(steps))
        self.bn = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, num_classes)
        self.steps = steps

    def forward(self, x):
        h = self.conv(x)
        for k in range(self.steps):
            h = h + self.conv2(F.relu(self.bn2[k](self.conv1(F.relu(self.bn1[k](h))))))
        return self.fc(F.relu(self.bn(h)).mean(dim=(2, 3)))


def copy_into_resnet(model, ref, n=3):
    """Copy a visrecur multi-state ResNet's weights into PreActResNet: block b <-> step b + 1, because
    the sequential schedule runs one transition per step, in the ResNet's block order."""
    names = [s.name for s in model.spec.graph.states]
    with torch.no_grad():
        ref.conv.weight.copy_(model.prenet.net.weight)
        for b, block in enumerate(ref.blocks):
            stage, k = divmod(b, n)
            source = names[stage - 1] if stage > 0 and k == 0 else names[stage]
            ours = model.blocks[f"{source}->{names[stage]}@{b + 1}"]
            block.conv1.weight.copy_(ours.convs[0].weight)
            block.conv2.weight.copy_(ours.convs[1].weight)
            block.bn1.weight.copy_(ours.bn_weight[0]), block.bn1.bias.copy_(ours.bn_bias[0])
            block.bn2.weight.copy_(ours.bn_weight[1]), block.bn2.bias.copy_(ours.bn_bias[1])
            if block.shortcut is not None:
                block.shortcut.weight.copy_(ours.projection.weight)
        ref.bn.weight.copy_(model.postnet.norm.weight), ref.bn.bias.copy_(model.postnet.norm.bias)
        ref.fc.load_state_dict(model.postnet.fc.state_dict())
