"""PyTorch peer for bench/resnet8.mjs: the same ResNet-8 (3x3 stem, one basic block per stage,
widths 16/32/64, 1x1 projection shortcuts, global pooling, linear head) on 28x28x1, one thread.
Prints one JSON line of median milliseconds. Benchmark only: never a dependency of ctta."""
import json, sys, time
import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(1)
batch, reps = int(sys.argv[1]), int(sys.argv[2])


class Block(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.proj = None
        if stride != 1 or cin != cout:
            self.proj = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = F.relu(self.b1(self.c1(x)))
        y = self.b2(self.c2(y))
        return F.relu(y + (self.proj(x) if self.proj is not None else x))


net = nn.Sequential(
    nn.Conv2d(1, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
    Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2),
    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))
x = torch.rand(batch, 1, 28, 28)
y = torch.randint(0, 10, (batch,))


def median(f):
    for _ in range(3):
        f()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) * 1000)
    ts.sort()
    return ts[len(ts) // 2]


def forward():
    net.eval()
    with torch.no_grad():
        net(x)


def step(params):
    net.train()
    opt = torch.optim.SGD(params, lr=0.01)
    def run():
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    return run


bn = [p for m in net.modules() if isinstance(m, nn.BatchNorm2d) for p in (m.weight, m.bias)]
for p in net.parameters():
    p.requires_grad_(False)
for p in bn:
    p.requires_grad_(True)
tent = median(step(bn))
for p in net.parameters():
    p.requires_grad_(True)
full = median(step(list(net.parameters())))
print(json.dumps({"version": torch.__version__, "forward": median(forward), "tent": tent, "full": full}))
