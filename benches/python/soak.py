#!/usr/bin/env python3
"""Soak: `umbrald serve` under steady open-loop load at a share of its measured capacity, with
its resident memory, open file descriptors and the load's p99 sampled over time.

    benches/python/soak.py --umbrald target/release/umbrald --duration 3600 --out DIR
    benches/python/soak.py --umbrald target/debug/umbrald --duration 120 --check   # CI

1. Starts `umbrald serve` (own data dir, loopback ports) and reads its certificate fingerprint.
2. Capacity: a closed-loop `umbrald bench` (--concurrency 8) for --calibrate seconds; the soak
   rate is --load (default 0.7) of the requests/s it sustained.
3. The soak: consecutive open-loop `umbrald bench --rate R` segments of --segment seconds, each
   on fresh connections, while /proc/<pid> is sampled every second (VmRSS, open fds).
4. Writes DIR/samples.csv (t, rss_kib, fds), DIR/segments.csv (t, p50, p99, max, answered,
   failed) and DIR/report.md (figures, the trend fits, Mermaid charts of RSS and p99).

--check fails (exit 1) when the run shows growth beyond the bounds below, measured after the
first --warmup share of the run: RSS growing by more than --rss-growth-mib over the run by its
least-squares trend, open fds growing by more than --fd-growth, the p99 of the last third of the
segments above --p99-growth times that of the first third, or any failed request.
"""

import argparse
import csv
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from shutil import which


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--umbrald", required=True, help="the umbrald binary (server and load generator)")
    p.add_argument("--duration", type=float, default=3600.0, help="soak length, seconds")
    p.add_argument("--segment", type=float, default=30.0, help="length of one bench segment, seconds")
    p.add_argument("--calibrate", type=float, default=8.0, help="capacity measurement, seconds")
    p.add_argument("--load", type=float, default=0.7, help="share of the measured capacity to offer")
    p.add_argument("--batch", type=int, default=8, help="capsules per request")
    p.add_argument("--workers", type=int, default=1, help="server worker threads")
    p.add_argument("--server-cpus", default="0", help="CPU list for the server (taskset)")
    p.add_argument("--load-cpus", default="1", help="CPU list for the load generator (taskset)")
    p.add_argument("--out", type=Path, help="directory for samples.csv, segments.csv, report.md")
    p.add_argument("--check", action="store_true", help="fail on growth beyond the bounds")
    p.add_argument("--warmup", type=float, default=0.2, help="share of the run left out of the fits")
    p.add_argument("--rss-growth-mib", type=float, default=8.0)
    p.add_argument("--fd-growth", type=float, default=4.0)
    p.add_argument("--p99-growth", type=float, default=3.0)
    return p.parse_args()


def taskset(cpus):
    return ["taskset", "-c", cpus] if cpus and which("taskset") else []


class Server:
    """`umbrald serve` on loopback with its own data dir; stdout drained in a thread."""

    def __init__(self, args, workdir):
        quic, metrics = free_udp_port(), free_tcp_port()
        self.addr = f"127.0.0.1:{quic}"
        cmd = taskset(args.server_cpus) + [
            args.umbrald, "serve",
            "--listen", self.addr,
            "--metrics-listen", f"127.0.0.1:{metrics}",
            "--data-dir", str(workdir / "data"),
            "--workers", str(args.workers),
            "--log", "warn",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.fingerprint = None
        ready = threading.Event()

        def drain():
            for line in self.proc.stdout:
                if line.startswith("certificate SHA-256 fingerprint: "):
                    self.fingerprint = line.split(": ", 1)[1].strip()
                    ready.set()
            ready.set()

        threading.Thread(target=drain, daemon=True).start()
        if not ready.wait(60) or not self.fingerprint:
            self.stop()
            sys.exit("soak: the server did not print its fingerprint within 60 s")

    def sample(self):
        """(VmRSS KiB, open fds) of the server process."""
        rss = 0
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
        fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return rss, fds

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def free_udp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_tcp_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench(args, server, extra, seconds, json_path):
    cmd = taskset(args.load_cpus) + [
        args.umbrald, "bench",
        "--addr", server.addr,
        "--fingerprint", server.fingerprint,
        "--batch", str(args.batch),
        "--duration", f"{seconds}s",
        "--warmup", "1s",
        "--json", str(json_path),
    ] + extra
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                          timeout=seconds + 120)
    if not json_path.exists():
        sys.exit(f"soak: bench failed (exit {done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(json_path.read_text())


def trend(points):
    """Least-squares slope of (x, y) points, per unit of x."""
    if len(points) < 3:
        return 0.0
    xs, ys = zip(*points)
    return statistics.linear_regression(xs, ys).slope


def mermaid(title, y_label, xs, ys):
    xs_txt = ", ".join(f"{x:.0f}" for x in xs)
    ys_txt = ", ".join(f"{y:.2f}" for y in ys)
    return (
        "```mermaid\nxychart-beta\n"
        f'    title "{title}"\n'
        f'    x-axis "seconds" [{xs_txt}]\n'
        f'    y-axis "{y_label}"\n'
        f"    line [{ys_txt}]\n```\n"
    )


def thin(rows, limit):
    """At most `limit` evenly spaced rows (Mermaid charts stay readable)."""
    if len(rows) <= limit:
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def main():
    args = parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="umbrald-soak-"))
    out = args.out or workdir
    out.mkdir(parents=True, exist_ok=True)
    server = Server(args, workdir)
    samples, segments = [], []
    stop_sampling = threading.Event()
    t0 = time.monotonic()

    def sampler():
        while not stop_sampling.wait(1.0):
            if not server.alive():
                return
            rss, fds = server.sample()
            samples.append((time.monotonic() - t0, rss, fds))

    try:
        calib = bench(args, server, ["--concurrency", "8"], args.calibrate, workdir / "calibrate.json")
        capacity = calib["requests_per_s"]
        rate = max(1.0, capacity * args.load)
        print(f"soak: capacity {capacity:.0f} req/s x {args.batch} capsules; offering {rate:.0f} req/s "
              f"({args.load:.0%}) for {args.duration:.0f} s", flush=True)
        threading.Thread(target=sampler, daemon=True).start()
        t0 = time.monotonic()
        k = 0
        while time.monotonic() - t0 < args.duration:
            left = args.duration - (time.monotonic() - t0)
            seconds = max(2.0, min(args.segment, left))
            report = bench(args, server, ["--rate", f"{rate:.1f}"], seconds, workdir / f"seg{k}.json")
            lat = report["latency_ms"]["corrected"]
            segments.append((time.monotonic() - t0, lat["p50"], lat["p99"], lat["max"],
                             report["requests"]["answered"], report["requests"]["failed"]))
            k += 1
            if not server.alive():
                sys.exit("soak: the server exited during the run")
    finally:
        stop_sampling.set()
        server.stop()

    with open(out / "samples.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "rss_kib", "fds"])
        w.writerows((f"{t:.1f}", r, d) for t, r, d in samples)
    with open(out / "segments.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t_s", "p50_ms", "p99_ms", "max_ms", "answered", "failed"])
        w.writerows((f"{t:.1f}", p50, p99, mx, a, fl) for t, p50, p99, mx, a, fl in segments)

    start = args.duration * args.warmup
    steady = [s for s in samples if s[0] >= start]
    rss_growth_mib = trend([(t, r) for t, r, _ in steady]) * (args.duration - start) / 1024
    fd_growth = trend([(t, d) for t, _, d in steady]) * (args.duration - start)
    third = max(1, len(segments) // 3)
    p99_first = statistics.median(s[2] for s in segments[:third])
    p99_last = statistics.median(s[2] for s in segments[-third:])
    failed = sum(s[5] for s in segments)
    answered = sum(s[4] for s in segments)
    rss = [r for _, r, _ in samples]
    fds = [d for _, _, d in samples]
    lines = [
        f"# Soak: {args.duration:.0f} s at {args.load:.0%} of capacity ({rate:.0f} req/s x {args.batch} capsules)",
        "",
        f"- capacity (closed loop, 8 in flight): {capacity:.0f} req/s",
        f"- requests answered {answered}, failed {failed}",
        f"- RSS: min {min(rss) / 1024:.1f} MiB, max {max(rss) / 1024:.1f} MiB; "
        f"trend after warm-up {rss_growth_mib:+.2f} MiB over the run (bound {args.rss_growth_mib} MiB)",
        f"- open fds: min {min(fds)}, max {max(fds)}; trend {fd_growth:+.2f} over the run (bound {args.fd_growth})",
        f"- p99 (median of segments): first third {p99_first:.2f} ms, last third {p99_last:.2f} ms "
        f"(ratio {p99_last / p99_first:.2f}, bound {args.p99_growth})",
        "",
        mermaid("server RSS (MiB)", "MiB", *zip(*[(t, r / 1024) for t, r, _ in thin(samples, 60)])),
        mermaid("p99 per segment (ms, corrected)", "ms", *zip(*[(s[0], s[2]) for s in thin(segments, 60)])),
    ]
    (out / "report.md").write_text("\n".join(lines))
    print("\n".join(lines[:8]))
    print(f"soak: files in {out}")

    if args.check:
        problems = []
        if failed:
            problems.append(f"{failed} requests failed")
        if rss_growth_mib > args.rss_growth_mib:
            problems.append(f"RSS grows {rss_growth_mib:.2f} MiB over the run (bound {args.rss_growth_mib})")
        if fd_growth > args.fd_growth:
            problems.append(f"open fds grow {fd_growth:.2f} over the run (bound {args.fd_growth})")
        if p99_last > args.p99_growth * p99_first:
            problems.append(f"p99 grows from {p99_first:.2f} to {p99_last:.2f} ms (bound x{args.p99_growth})")
        if problems:
            sys.exit("soak: FAIL: " + "; ".join(problems))
        print("soak: ok: no growth beyond the bounds")


if __name__ == "__main__":
    main()
