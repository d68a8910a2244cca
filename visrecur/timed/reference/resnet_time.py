"""The feedforward baseline: torchvision's ResNet-18 with time = depth. Each stage is one step: the stem
(conv1, bn1, relu, maxpool) is step 0 and stage ``layer k`` step k, so a recording holds one step per
area at its depth (NaN elsewhere) and the readout (``fc``) follows layer4 at step 4."""
from __future__ import annotations

AREAS = {"stem": "maxpool", "layer1": "layer1", "layer2": "layer2", "layer3": "layer3", "layer4": "layer4"}
FIRST_STEP = {area: k for k, area in enumerate(AREAS)}


def resnet18(num_classes: int = 1000):
    """torchvision's ResNet-18, randomly initialised by torchvision (no weights are downloaded)."""
    from torchvision.models import resnet18 as build

    return build(weights=None, num_classes=num_classes)
