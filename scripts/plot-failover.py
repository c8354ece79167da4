#!/usr/bin/python3
"""Plots the write throughput Prometheus recorded around a leader kill (test/live/monitoring).

usage: plot-failover.py DATA.json OUT.png

DATA.json: {"title", "points": [[unix s, commits/s], ...], "killedAt", "resumedAt", "alertAt"}
(unix seconds). Uses Debian's python3-matplotlib with the Agg backend (no display).
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main() -> None:
    data_path, out = sys.argv[1], sys.argv[2]
    with open(data_path, encoding="utf-8") as f:
        d = json.load(f)
    t0 = d["killedAt"]
    xs = [t - t0 for t, _ in d["points"]]
    ys = [v for _, v in d["points"]]
    fig, ax = plt.subplots(figsize=(9, 4.6), dpi=100)
    ax.plot(xs, ys, color="#1f77b4", linewidth=1.6, label="commits/s on the orders database (Prometheus)")
    ax.axvline(0, color="#d62728", linestyle="--", label="kill -9 of the leader")
    ax.axvline(d["resumedAt"] - t0, color="#2ca02c", linestyle="--",
               label=f"first write acknowledged again (+{d['resumedAt'] - t0:.1f} s)")
    ax.axvline(d["alertAt"] - t0, color="#ff7f0e", linestyle=":",
               label=f"PostgresLeaderChanged firing (+{d['alertAt'] - t0:.1f} s)")
    ax.set_xlabel("seconds from the kill")
    ax.set_ylabel("write transactions per second")
    ax.set_title(d["title"], fontsize=9)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2, fontsize=8, frameon=False)
    fig.tight_layout()
    fig.savefig(out)


if __name__ == "__main__":
    main()
