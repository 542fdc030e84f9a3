"""The table of `make bench-train`: lines "model|convnet json|pytorch json"
on stdin, one per model and round; per model the median seconds of each
side, their ratio (convnet / PyTorch) and, over several rounds, the ratio
of each round."""
import json
import statistics
import sys

runs = {}
for line in sys.stdin.read().split("\n"):
    if line:
        model, c, p = line.split("|")
        runs.setdefault(model, []).append((json.loads(c), json.loads(p)))
print("%-8s %10s %10s %8s %11s %11s  %s" % ("model", "convnet s", "pytorch s", "ratio",
                                           "convnet acc", "pytorch acc", "rounds"))
for model, pairs in runs.items():
    cs = statistics.median(c["seconds"] for c, _ in pairs)
    ps = statistics.median(p["seconds"] for _, p in pairs)
    each = " ".join("%.2f" % (c["seconds"] / p["seconds"]) for c, p in pairs)
    print("%-8s %10.1f %10.1f %8.2f %11.4f %11.4f  %d: %s" % (
        model, cs, ps, cs / ps, pairs[0][0]["test_accuracy"], pairs[0][1]["test_accuracy"],
        len(pairs), each))
