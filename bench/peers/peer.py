"""PyTorch peer of bench/bench.mjs: a long-lived process answering one JSON request per line on
stdin with one JSON line on stdout, so the harness can alternate rounds between ctta and PyTorch
in the same time window. A benchmark aid only: ctta never depends on PyTorch.

Run by the harness as `/usr/bin/python3 bench/peers/peer.py`. Requests ({"cmd": ...}):
  hello                                    versions, CPU capability, default threads
  build  {id, depth, width, input, classes, batch}   a ResNet twin (resnet.py) and fixed inputs
  load   {id, bin, index}                  weights exported by ctta (float32 file + JSON index)
  check  {id, bin, shape}                  logits (stored and batch statistics) and the TENT
                                           entropy gradient of the norm affine weights on the
                                           given NHWC input
  time   {id, pass, threads, iters}        mean ms per call of `iters` calls of a pass
  memory {id, pass}                        peak bytes allocated during one call (profiler events)
  profile {id, pass, threads, top, calls}  top operators by self CPU time, per call
  conv   {shape, kind, threads, iters}     ms per call of one convolution (fwd, dx or dw)
  gemm   {n, threads, iters}               ms per n x n x n matrix product
  quit
Passes: forward (stored statistics, no grad), bnadapt (batch statistics, no grad), tent (batch
statistics, entropy, Adam on the norm affine weights), full (batch statistics, cross-entropy, SGD
on all weights). Running statistics are never updated, as in ctta's passes.
"""
import json
import os
import sys
import time

import torch  # first, so a missing python3-torch is what the harness reports
import numpy as np
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from resnet import ResNet  # noqa: E402

torch.manual_seed(0)
nets = {}
threads_now = None


def set_threads(n):
    """Returns True when the thread count changed (the caller then runs an untimed call)."""
    global threads_now
    if n == threads_now:
        return False
    torch.set_num_threads(int(n))
    threads_now = n
    return True


class Bench:
    def __init__(self, req):
        self.net = ResNet(req["depth"], req["width"], req["input"], req["classes"])
        h, w, c = req["input"]
        g = torch.Generator().manual_seed(1)
        self.x = torch.rand(req["batch"], c, h, w, generator=g)
        self.y = torch.randint(0, req["classes"], (req["batch"],), generator=g)
        self.affine = [p for _, m in self.net.norms() for p in (m.weight, m.bias)]
        self.tent_opt = torch.optim.Adam(self.affine, lr=1e-3)
        self.full_opt = torch.optim.SGD(self.net.parameters(), lr=0.01)
        self.current = None

    def mode(self, statistics):
        """'running' (eval) or 'batch' (normalise with the batch's statistics, never update the stored ones)."""
        if statistics == "running":
            for _, m in self.net.norms():
                m.track_running_stats = True
            self.net.eval()
        else:
            self.net.train()
            for _, m in self.net.norms():
                m.track_running_stats = False

    def prepare(self, name):
        if name == self.current:
            return
        self.mode("running" if name == "forward" else "batch")
        train = {"forward": [], "bnadapt": [], "tent": self.affine, "full": list(self.net.parameters())}[name]
        for p in self.net.parameters():
            p.requires_grad_(False)
        for p in train:
            p.requires_grad_(True)
        self.current = name

    def call(self, name):
        self.prepare(name)
        if name in ("forward", "bnadapt"):
            with torch.no_grad():
                self.net(self.x)
        elif name == "tent":
            self.tent_opt.zero_grad(set_to_none=True)
            entropy(self.net(self.x)).backward()
            self.tent_opt.step()
        elif name == "full":
            self.full_opt.zero_grad(set_to_none=True)
            F.cross_entropy(self.net(self.x), self.y).backward()
            self.full_opt.step()
        else:
            raise ValueError(f"unknown pass {name}")


def entropy(logits):
    logp = F.log_softmax(logits, 1)
    return -(logp.exp() * logp).sum(1).mean()


def timed(f, iters):
    t = time.perf_counter()
    for _ in range(iters):
        f()
    return (time.perf_counter() - t) * 1000 / iters


def peak_bytes(f):
    """Peak of bytes allocated minus freed during f, from the profiler's memory events (CPU)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        f()
    live = peak = 0
    for e in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def top_ops(f, top, calls):
    """Operators by self CPU time, per call, over `calls` calls inside one profile."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        t = time.perf_counter()
        for _ in range(calls):
            f()
        wall = (time.perf_counter() - t) * 1000 / calls
    rows = [(e.key, e.self_cpu_time_total / 1000 / calls, e.count / calls) for e in prof.key_averages()]
    total = sum(r[1] for r in rows)
    rows.sort(key=lambda r: -r[1])
    return {"wallMs": wall, "totalMs": total, "ops": [{"name": k, "ms": ms, "calls": n} for k, ms, n in rows[:top]]}


def read_f32(path, shape=None):
    a = np.fromfile(path, dtype="<f4")
    return a if shape is None else a.reshape(shape)


def conv_op(req):
    """A convolution of one shape: fwd (input -> output), dx (input gradient), dw (filter gradient)."""
    n, h, w, ci, co, k, s, oh, ow = (req["shape"][key] for key in ("n", "h", "w", "ci", "co", "k", "s", "oh", "ow"))
    pad = k // 2 if s == 1 else (k - 1) // 2  # the cost of TensorFlow 'same' up to one edge row
    x = torch.rand(n, ci, h, w)
    wt = torch.rand(co, ci, k, k)
    dy = torch.rand(n, co, oh, ow)
    if req["kind"] == "fwd":
        return lambda: F.conv2d(x, wt, None, s, pad)
    mask = [req["kind"] == "dx", req["kind"] == "dw", False]
    return lambda: torch.ops.aten.convolution_backward(dy, x, wt, None, [s, s], [pad, pad], [1, 1], False, [0, 0], 1, mask)


def blas_libraries():
    """The BLAS/LAPACK shared objects this process loaded (torch.mm and nn.Linear go through them)."""
    torch.mm(torch.ones(8, 8), torch.ones(8, 8))
    found = set()
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.split()[-1] if "/" in line else ""
                base = os.path.basename(path)
                if any(k in base for k in ("blas", "mkl", "lapack", "dnnl")):
                    found.add(os.path.realpath(path))
    except OSError:
        pass
    return sorted(found)


def capability():
    for line in torch.__config__.show().splitlines():
        if "CPU capability usage" in line:
            return line.split(":", 1)[1].strip()
    return "unknown"


def handle(req):
    cmd = req["cmd"]
    if cmd == "hello":
        return {"torch": torch.__version__, "numpy": np.__version__, "python": sys.version.split()[0],
                "capability": capability(), "mkldnn": torch.backends.mkldnn.is_available(),
                "defaultThreads": torch.get_num_threads(), "blas": blas_libraries()}
    if cmd == "build":
        b = Bench(req)
        nets[req["id"]] = b
        params, buffers = b.net.counts()
        return {"params": params, "buffers": buffers}
    if cmd == "load":
        index = json.load(open(req["index"]))
        flat = read_f32(req["bin"])
        weights = {e["name"]: flat[e["offset"]: e["offset"] + int(np.prod(e["shape"]))].reshape(e["shape"]).copy() for e in index}
        nets[req["id"]].net.load_tfjs(weights)
        return {"loaded": len(weights)}
    if cmd == "check":
        b = nets[req["id"]]
        x = torch.from_numpy(read_f32(req["bin"], req["shape"]).copy()).permute(0, 3, 1, 2).contiguous()
        b.prepare("forward")
        with torch.no_grad():
            running = b.net(x)
        b.prepare("tent")
        batch = b.net(x)
        names = [f"{layer}/{w}" for layer, _ in b.net.norms() for w in ("gamma", "beta")]
        grads = torch.autograd.grad(entropy(batch), b.affine)
        b.current = None
        return {"running": running.flatten().tolist(), "batch": batch.detach().flatten().tolist(),
                "grads": {k: g.flatten().tolist() for k, g in zip(names, grads)}}
    if cmd == "time":
        b = nets[req["id"]]
        f = lambda: b.call(req["pass"])  # noqa: E731
        if set_threads(req["threads"]) or b.current != req["pass"]:
            f()
        return {"ms": timed(f, req["iters"])}
    if cmd == "memory":
        b = nets[req["id"]]
        f = lambda: b.call(req["pass"])  # noqa: E731
        f()
        return {"peakBytes": peak_bytes(f)}
    if cmd == "profile":
        b = nets[req["id"]]
        f = lambda: b.call(req["pass"])  # noqa: E731
        set_threads(req["threads"])
        f()
        return top_ops(f, req.get("top", 8), req.get("calls", 1))
    if cmd == "conv":
        f = conv_op(req)
        set_threads(req["threads"])
        with torch.no_grad():
            f()
            return {"ms": timed(f, req["iters"])}
    if cmd == "gemm":
        n = req["n"]
        a, c = torch.rand(n, n), torch.rand(n, n)
        set_threads(req["threads"])
        torch.mm(a, c)
        return {"ms": timed(lambda: torch.mm(a, c), req["iters"])}
    raise ValueError(f"unknown command {cmd}")


def main():
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but answers on the protocol stream
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("cmd") == "quit":
            break
        try:
            res = {"ok": True, **handle(req)}
        except Exception as e:  # reported to the harness, which says what failed
            res = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
