"""PyTorch twin of ctta's zoo ResNets (src/models/zoo/resnet.ts), for the benchmark only.

CIFAR-style ResNet of depth 6n+2: a 3x3 stride-1 stem conv (no bias) + BatchNorm + ReLU, three
stages of n basic blocks with widths w, 2w, 4w (the first block of stages 2 and 3 has stride 2),
1x1 conv + BatchNorm projection shortcuts where the shape changes, global average pooling and a
linear head. BatchNorm eps 1e-5.

Two details make it the same function as the tfjs model, not merely the same cost:
- tfjs convolutions use padding 'same' (TensorFlow's rule): a 3x3 stride-2 conv on an even input
  pads 0 rows/columns before and 1 after, where PyTorch's padding=1 pads 1 on both sides. Such
  convs get an explicit asymmetric zero pad here (F.pad), the others PyTorch's own padding.
- Modules are named after the tfjs layers (`stem_conv`, `s2_b0_proj_norm`, `head`), so the
  weights ctta exports (`<layer>/<weight>`) load by name.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def same_padding(size, kernel, stride):
    """TensorFlow 'same' padding (before, after) of one spatial dimension, and the output size."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2, out


class SameConv(nn.Module):
    """Conv2d without bias, padded as TensorFlow's 'same' for an input of `size` x `size`."""

    def __init__(self, cin, cout, kernel, stride, size):
        super().__init__()
        before, after, self.out_size = same_padding(size, kernel, stride)
        symmetric = before == after
        self.pad = None if symmetric else (before, after, before, after)
        self.conv = nn.Conv2d(cin, cout, kernel, stride, before if symmetric else 0, bias=False)

    @property
    def weight(self):
        return self.conv.weight

    def forward(self, x):
        if self.pad is not None:
            x = F.pad(x, self.pad)
        return self.conv(x)


class ResNet(nn.Module):
    def __init__(self, depth, width, input_shape, num_classes):
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ValueError(f"ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        height, _, channels = input_shape
        self.layers = nn.ModuleDict()
        self.plan = []  # (prefix, has_projection) per block, in order
        size = height
        self.layers["stem_conv"] = SameConv(channels, width, 3, 1, size)
        self.layers["stem_norm"] = nn.BatchNorm2d(width, eps=1e-5)
        cin = width
        for stage in range(3):
            filters = width * 2 ** stage
            for i in range(n):
                stride = 2 if stage > 0 and i == 0 else 1
                p = f"s{stage + 1}_b{i}"
                conv1 = SameConv(cin, filters, 3, stride, size)
                self.layers[f"{p}_conv1"] = conv1
                self.layers[f"{p}_norm1"] = nn.BatchNorm2d(filters, eps=1e-5)
                self.layers[f"{p}_conv2"] = SameConv(filters, filters, 3, 1, conv1.out_size)
                self.layers[f"{p}_norm2"] = nn.BatchNorm2d(filters, eps=1e-5)
                project = stride != 1 or cin != filters
                if project:
                    self.layers[f"{p}_proj"] = SameConv(cin, filters, 1, stride, size)
                    self.layers[f"{p}_proj_norm"] = nn.BatchNorm2d(filters, eps=1e-5)
                self.plan.append((p, project))
                size = conv1.out_size
                cin = filters
        self.layers["head"] = nn.Linear(cin, num_classes)

    def forward(self, x):
        L = self.layers
        x = F.relu(L["stem_norm"](L["stem_conv"](x)))
        for p, project in self.plan:
            y = F.relu(L[f"{p}_norm1"](L[f"{p}_conv1"](x)))
            y = L[f"{p}_norm2"](L[f"{p}_conv2"](y))
            shortcut = L[f"{p}_proj_norm"](L[f"{p}_proj"](x)) if project else x
            x = F.relu(y + shortcut)
        return L["head"](x.mean(dim=(2, 3)))

    def norms(self):
        """BatchNorm layers by their tfjs names, in forward order."""
        return [(name, m) for name, m in self.layers.items() if isinstance(m, nn.BatchNorm2d)]

    def load_tfjs(self, weights):
        """Loads ctta's exported weights: {"<layer>/<weight>": float32 array in tfjs layout}."""
        seen = set()
        with torch.no_grad():
            for key, value in weights.items():
                layer, weight = key.split("/", 1)
                if layer not in self.layers:
                    raise KeyError(f"no layer {layer} in the PyTorch twin (weight {key})")
                m = self.layers[layer]
                t = torch.from_numpy(value)
                if isinstance(m, SameConv):
                    if weight != "kernel":
                        raise KeyError(key)
                    target, t = m.conv.weight, t.permute(3, 2, 0, 1)  # [kh,kw,ci,co] -> [co,ci,kh,kw]
                elif isinstance(m, nn.Linear):
                    target, t = (m.weight, t.t()) if weight == "kernel" else (m.bias, t)
                else:
                    target = {"gamma": m.weight, "beta": m.bias, "moving_mean": m.running_mean, "moving_variance": m.running_var}[weight]
                if tuple(target.shape) != tuple(t.shape):
                    raise ValueError(f"{key}: PyTorch shape {tuple(target.shape)}, exported {tuple(t.shape)}")
                target.copy_(t)
                seen.add(key)
        expected = self.tfjs_names()
        missing = sorted(expected - seen)
        if missing:
            raise KeyError(f"weights missing from the export: {missing[:5]}")

    def tfjs_names(self):
        names = set()
        for layer, m in self.layers.items():
            if isinstance(m, SameConv):
                names.add(f"{layer}/kernel")
            elif isinstance(m, nn.Linear):
                names.update({f"{layer}/kernel", f"{layer}/bias"})
            else:
                names.update(f"{layer}/{w}" for w in ("gamma", "beta", "moving_mean", "moving_variance"))
        return names

    def counts(self):
        """(trainable parameters, BatchNorm running-statistic values): Keras' trainable / non-trainable split."""
        params = sum(p.numel() for p in self.parameters())
        buffers = sum(m.running_mean.numel() + m.running_var.numel() for _, m in self.norms())
        return params, buffers
