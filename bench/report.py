#!/usr/bin/env python3
"""Formats bench/run.sh results (results.tsv) as Markdown tables and checks the issue-7 targets."""
import json
import sys

path, clk_tck = sys.argv[1], int(sys.argv[2])
load, rss, peak = {}, {}, {}
for line in open(path, encoding="utf-8"):
    f = line.rstrip("\n").split("\t")
    if f[0] == "load":
        alg, who, c, result, non2xx, ticks = f[1], f[2], int(f[3]), json.loads(f[4]), int(f[5]), int(f[6])
        result["non2xx"] = non2xx
        result["cpu_us_per_req"] = ticks / clk_tck * 1e6 / max(result["requests"], 1)
        load[(alg, who, c)] = result
    elif f[0] == "rss":
        rss[(f[1], f[2])] = (int(f[3]), int(f[4]))
    elif f[0] == "peak":
        peak[(f[1], f[2])] = int(f[3])

ms = lambda us: f"{us / 1000:.2f}"
mib = lambda kib: f"{kib / 1024:.1f}"
algs = sorted({k[0] for k in load}, key=lambda a: ["HS256", "RS256"].index(a) if a in ("HS256", "RS256") else 9)
levels = sorted({k[2] for k in load})

print("\n### Throughput and latency (POST /api/livekit/token)\n")
print("| caller alg | conns | sidecar req/s | peer req/s | **ratio** | sidecar p50 / p99 ms | peer p50 / p99 ms "
      "| p99 ratio (peer/sidecar) | sidecar CPU µs/req | peer CPU µs/req | errors (sidecar/peer) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for alg in algs:
    for c in levels:
        s, p = load.get((alg, "sidecar", c)), load.get((alg, "peer", c))
        if not s or not p:
            continue
        err = lambda r: r["non2xx"] + r["err_connect"] + r["err_read"] + r["err_write"] + r["err_timeout"]
        print(f"| {alg} | {c} | {s['rps']:.0f} | {p['rps']:.0f} | **{s['rps'] / p['rps']:.1f}×** "
              f"| {ms(s['p50_us'])} / {ms(s['p99_us'])} | {ms(p['p50_us'])} / {ms(p['p99_us'])} "
              f"| {p['p99_us'] / max(s['p99_us'], 1):.1f}× "
              f"| {s['cpu_us_per_req']:.0f} | {p['cpu_us_per_req']:.0f} | {err(s)} / {err(p)} |")

print("\n### Memory (VmRSS / VmHWM from /proc/PID/status)\n")
print("| caller alg | server | RSS at start MiB | idle RSS MiB (after checks) | peak RSS MiB (VmHWM) |")
print("|---|---|---:|---:|---:|")
for alg in algs:
    for who in ("sidecar", "peer"):
        if (alg, who) in rss:
            start, idle = rss[(alg, who)]
            print(f"| {alg} | {who} | {mib(start)} | {mib(idle)} | {mib(peak.get((alg, who), 0))} |")
    if (alg, "sidecar") in rss and (alg, "peer") in rss:
        si, pi = rss[(alg, "sidecar")][1], rss[(alg, "peer")][1]
        sp, pp = peak.get((alg, "sidecar"), 0), peak.get((alg, "peer"), 1)
        print(f"| {alg} | ratio peer/sidecar | | {pi / si:.1f}× | {pp / max(sp, 1):.1f}× |")

print("\n### Targets (issue 7)\n")
top = max(levels)
for alg in algs:
    s, p = load.get((alg, "sidecar", top)), load.get((alg, "peer", top))
    if s and p:
        ratio = s["rps"] / p["rps"]
        print(f"- {alg}, {top} connections: {ratio:.1f}× the peer's req/s (target ≥ 10×): "
              f"{'MET' if ratio >= 10 else 'MISSED'}; sidecar p99 {ms(s['p99_us'])} ms (target ≤ 5 ms): "
              f"{'MET' if s['p99_us'] <= 5000 else 'MISSED'}")
    if (alg, "sidecar") in rss:
        idle = rss[(alg, "sidecar")][1]
        print(f"- {alg}: sidecar idle RSS {mib(idle)} MiB (target ≤ 15 MiB): {'MET' if idle <= 15 * 1024 else 'MISSED'}")
