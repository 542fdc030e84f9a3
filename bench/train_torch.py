#!/usr/bin/env python3
"""PyTorch baseline for `convnet train`: the same models, data and hyper-parameters.

Trains convnet's `lenet` or `resnet` (src/nn/models.c) on Fashion-MNIST with
`convnet train`'s defaults -- AdamW (lr 2e-3, weight decay 0.05 on every
parameter), PyTorch's OneCycleLR (cosine, pct_start 0.3, div_factor 25,
final_div_factor 1e4) spanning the model's default 15 epochs whatever
--epochs is, batch 128 shuffled each epoch, the last partial batch kept,
inputs normalised with mean 0.2860 and std 0.3530 -- and prints the seconds
of every epoch (training plus evaluation on the test set, as convnet times
it) and the test accuracy.

    /usr/bin/python3 bench/train_torch.py --model lenet --epochs 1 --threads 2 [--limit N] [--json]

Needs Debian's python3-torch and dataset-fashion-mnist. NCHW, float32, CPU.
"""
import argparse
import gzip
import json
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN, STD = 0.2860, 0.3530
DEFAULT_DATA = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    """An IDX file (gzipped or not) as a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        sys.exit(f"train_torch: {path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load(data, split):
    """Images [N,1,28,28] normalised, labels [N] int64."""
    def find(stem):
        for name in (stem + ".gz", stem):
            p = os.path.join(data, name)
            if os.path.exists(p):
                return p
        sys.exit(f"train_torch: no {stem}[.gz] in {data}")

    x = read_idx(find(f"{split}-images-idx3-ubyte")).astype(np.float32) / 255.0
    y = read_idx(find(f"{split}-labels-idx1-ubyte")).astype(np.int64)
    x = (x - MEAN) / STD
    return torch.from_numpy(x).unsqueeze(1).contiguous(), torch.from_numpy(y)


class LeNet(nn.Module):
    """conv3x3(32)+BN+ReLU+maxpool2, conv3x3(64)+BN+ReLU+maxpool2, dropout 0.25, linear."""

    def __init__(self, classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(32)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(64)
        self.drop = nn.Dropout(0.25)
        self.fc = nn.Linear(64 * 7 * 7, classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2)
        return self.fc(self.drop(torch.flatten(x, 1)))


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x):
        h = F.relu(self.bn1(self.conv1(x)))
        h = self.bn2(self.conv2(h))
        return F.relu(h + (self.shortcut(x) if self.shortcut is not None else x))


class ResNet(nn.Module):
    """3x3 stem (32, no bias)+BN+ReLU, blocks (32,s1) (64,s2) (128,s2), global avg pool, linear."""

    def __init__(self, classes=10):
        super().__init__()
        self.stem = nn.Conv2d(1, 32, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(32)
        self.blocks = nn.Sequential(BasicBlock(32, 32, 1), BasicBlock(32, 64, 2),
                                    BasicBlock(64, 128, 2))
        self.fc = nn.Linear(128, classes)

    def forward(self, x):
        x = self.blocks(F.relu(self.bn(self.stem(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


MODELS = {"lenet": LeNet, "resnet": ResNet}
DEFAULT_EPOCHS = {"lenet": 15, "resnet": 15}   # convnet train's schedule length


def evaluate(model, x, y, batch=500):
    model.eval()
    loss, right = 0.0, 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(x[i:i + batch])
            loss += F.cross_entropy(out, y[i:i + batch], reduction="sum").item()
            right += (out.argmax(1) == y[i:i + batch]).sum().item()
    return loss / len(x), right / len(x)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=sorted(MODELS), default="lenet")
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data", default=DEFAULT_DATA)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--limit", type=int, default=0,
                    help="train on the first N training images only (convnet train --limit)")
    ap.add_argument("--json", action="store_true", help="one JSON object per epoch")
    a = ap.parse_args()

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    xtr, ytr = load(a.data, "train")
    xte, yte = load(a.data, "t10k")
    if a.limit > 0:
        xtr, ytr = xtr[:a.limit], ytr[:a.limit]
    model = MODELS[a.model]()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.05)
    steps = (len(xtr) + a.batch_size - 1) // a.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=2e-3, total_steps=steps * DEFAULT_EPOCHS[a.model], pct_start=0.3,
        anneal_strategy="cos", cycle_momentum=False, div_factor=25.0, final_div_factor=1e4)
    nparams = sum(p.numel() for p in model.parameters())
    print(f"pytorch {torch.__version__} model {a.model}: {nparams} parameters, "
          f"{len(xtr)} training and {len(xte)} test images, {torch.get_num_threads()} threads",
          file=sys.stderr if a.json else sys.stdout, flush=True)
    for epoch in range(a.epochs):
        t0 = time.perf_counter()
        model.train()
        perm = torch.randperm(len(xtr))
        loss_sum, hits = 0.0, 0
        for i in range(0, len(xtr), a.batch_size):
            idx = perm[i:i + a.batch_size]
            xb, yb = xtr[idx], ytr[idx]
            out = model(xb)
            loss = F.cross_entropy(out, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * len(idx)
            hits += (out.argmax(1) == yb).sum().item()
        test_loss, test_acc = evaluate(model, xte, yte)
        secs = time.perf_counter() - t0
        tl, ta = loss_sum / len(xtr), hits / len(xtr)
        if a.json:
            print(json.dumps({"epoch": epoch + 1, "train_loss": round(tl, 6),
                              "train_accuracy": round(ta, 6), "test_loss": round(test_loss, 6),
                              "test_accuracy": round(test_acc, 6), "seconds": round(secs, 3)}),
                  flush=True)
        else:
            print(f"epoch {epoch + 1}/{a.epochs}  train loss {tl:.4f}  accuracy {ta:.4f}  |  "
                  f"test loss {test_loss:.4f}  accuracy {test_acc:.4f}  |  {secs:.1f}s", flush=True)


if __name__ == "__main__":
    main()
