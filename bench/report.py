#!/usr/bin/env python3
"""Prints bench/run.sh results (results.tsv) as Markdown: the sidecar as a fraction of the bare stack
(bench/bare) beside the NestJS peer, and issue 13's targets, each judged from the figures of that run.

    python3 bench/report.py target/bench/results.tsv [more results.tsv ...]
"""
import json
import sys

SERVERS = ("sidecar", "bare", "peer")
ALG_ORDER = ("HS256", "RS256", "ES256")
# Issue 13's targets, "in the same kind of run": the sidecar against the bare stack of the same run.
RPS_FRACTION = 0.80  # of the bare stack's req/s, HS256 and RS256 callers
RPS_ALGS = ("HS256", "RS256")
CPU_US_HS256 = 30.0  # CPU µs per HS256 request
P99_FACTOR = 1.25  # p99 at 64 connections within this factor of the bare stack's
P99_ALGS = ("HS256", "RS256")
IDLE_MIB, PEAK_MIB = 8.0, 16.0
TARGET_CONNS = 64  # the level the req/s, p99 and CPU targets are judged at (the others are shown beside)


def read(path):
    run = {"meta": {}, "load": {}, "rss": {}, "peak": {}, "loadavg": []}
    for line in open(path, encoding="utf-8"):
        f = line.rstrip("\n").split("\t")
        kind = f[0]
        if kind == "meta":
            run["meta"][f[1]] = f[2]
        elif kind == "load":
            alg, who, c, result = f[1], f[2], int(f[3]), json.loads(f[4])
            result["non2xx"], result["ticks"] = int(f[5]), int(f[6])
            run["load"][(alg, who, c)] = result
        elif kind == "rss":
            run["rss"][(f[1], f[2])] = (int(f[3]), int(f[4]))
        elif kind == "peak":
            run["peak"][(f[1], f[2])] = int(f[3])
        elif kind == "loadavg":
            run["loadavg"].append((f[1], f[2], f[3]))
    clk_tck = int(run["meta"].get("clk_tck", "100"))
    for result in run["load"].values():
        result["cpu_us"] = result["ticks"] / clk_tck * 1e6 / max(result["requests"], 1)
        result["errors"] = result["non2xx"] + sum(
            result[k] for k in ("err_connect", "err_read", "err_write", "err_timeout"))
    return run


def ms(us):
    return f"{us / 1000:.2f}"


def mib(kib):
    return kib / 1024


def verdict(ok):
    return "**met**" if ok else "**not met**"


def report(path):
    run = read(path)
    load, rss, peak = run["load"], run["rss"], run["peak"]
    algs = sorted({k[0] for k in load}, key=lambda a: ALG_ORDER.index(a) if a in ALG_ORDER else 99)
    levels = sorted({k[2] for k in load})
    servers = [s for s in SERVERS if any(k[1] == s for k in load)]

    print(f"## Run of {run['meta'].get('date', '?')} ({path})\n")
    print("| | |\n|---|---|")
    for key in ("commit", "cpu", "kernel", "rustc", "node", "wrk", "pinning"):
        if key in run["meta"]:
            print(f"| {key} | {run['meta'][key]} |")
    if run["loadavg"]:
        spans = ", ".join(f"{alg} {phase} {avg}" for alg, phase, avg in run["loadavg"])
        print(f"| load average (1/5/15 min) | {spans} |")

    def vs_bare(alg, who, c, field, fmt):
        mine, bare = load.get((alg, who, c)), load.get((alg, "bare", c))
        if who == "bare" or not mine or not bare or not bare[field]:
            return ""
        return fmt(mine[field] / bare[field])

    for alg in algs:
        print(f"\n### {alg} callers: POST /api/livekit/token\n")
        print("| conns | server | req/s | p50 ms | p99 ms | CPU µs/req | errors | req/s ÷ bare | p99 ÷ bare |")
        print("|---:|---|---:|---:|---:|---:|---:|---:|---:|")
        for c in levels:
            for who in servers:
                r = load.get((alg, who, c))
                if not r:
                    continue
                print(f"| {c} | {who} | {r['rps']:.0f} | {ms(r['p50_us'])} | {ms(r['p99_us'])} "
                      f"| {r['cpu_us']:.1f} | {r['errors']} "
                      f"| {vs_bare(alg, who, c, 'rps', lambda x: f'{x * 100:.0f} %')} "
                      f"| {vs_bare(alg, who, c, 'p99_us', lambda x: f'{x:.2f}×')} |")

    print("\n### Memory (MiB; VmRSS at start and idle after the checks, VmHWM after the load)\n")
    print("| caller alg | server | RSS at start | idle RSS | peak RSS |")
    print("|---|---|---:|---:|---:|")
    for alg in algs:
        for who in servers:
            if (alg, who) in rss:
                start, idle = rss[(alg, who)]
                top = peak.get((alg, who))
                print(f"| {alg} | {who} | {mib(start):.1f} | {mib(idle):.1f} "
                      f"| {'' if top is None else f'{mib(top):.1f}'} |")

    print("\n### Issue 13 targets (sidecar against the bare stack of this run)\n")
    print("| target | measured | verdict |")
    print("|---|---|---|")
    top = TARGET_CONNS

    def at_levels(alg, fmt):
        return ", ".join(f"{c}: {fmt(load[(alg, 'sidecar', c)], load[(alg, 'bare', c)])}"
                         for c in levels if (alg, "sidecar", c) in load and (alg, "bare", c) in load)

    for alg in algs:
        s, b = load.get((alg, "sidecar", top)), load.get((alg, "bare", top))
        name = f"req/s ≥ {RPS_FRACTION * 100:.0f} % of bare, {alg}, {top} connections"
        if not s or not b:
            print(f"| {name} | not measured | {verdict(False) if alg in RPS_ALGS else 'no target'} |")
            continue
        ratio = s["rps"] / b["rps"]
        others = at_levels(alg, lambda x, y: f"{x['rps'] / y['rps'] * 100:.0f} %")
        clean = s["errors"] == 0
        note = "" if clean else f"; {s['errors']} errors"
        if alg in RPS_ALGS:
            print(f"| {name} | {ratio * 100:.0f} % ({others}){note} | {verdict(ratio >= RPS_FRACTION and clean)} |")
        else:
            print(f"| {name} | {ratio * 100:.0f} % ({others}){note} | no target (shown) |")
    for alg in algs:
        s, b = load.get((alg, "sidecar", top)), load.get((alg, "bare", top))
        name = f"p99 ≤ {P99_FACTOR}× bare, {alg}, {top} connections"
        if not s or not b:
            print(f"| {name} | not measured | {verdict(False) if alg in P99_ALGS else 'no target'} |")
            continue
        factor = s["p99_us"] / max(b["p99_us"], 1)
        measured = f"{factor:.2f}× ({ms(s['p99_us'])} ms against {ms(b['p99_us'])} ms)"
        print(f"| {name} | {measured} | "
              f"{verdict(factor <= P99_FACTOR) if alg in P99_ALGS else 'no target (shown)'} |")
    s = load.get(("HS256", "sidecar", top))
    if s:
        others = ", ".join(f"{c}: {load[('HS256', 'sidecar', c)]['cpu_us']:.1f}"
                           for c in levels if ("HS256", "sidecar", c) in load)
        print(f"| CPU ≤ {CPU_US_HS256:.0f} µs per HS256 request, {top} connections | {s['cpu_us']:.1f} µs "
              f"({others}) | {verdict(s['cpu_us'] <= CPU_US_HS256)} |")
    else:
        print(f"| CPU ≤ {CPU_US_HS256:.0f} µs per HS256 request | not measured | **not met** |")
    idle = [rss[(alg, "sidecar")][1] for alg in algs if (alg, "sidecar") in rss]
    peaks = [peak[(alg, "sidecar")] for alg in algs if (alg, "sidecar") in peak]
    if idle:
        print(f"| idle RSS ≤ {IDLE_MIB:.0f} MiB | {mib(max(idle)):.1f} MiB (largest of {len(idle)}) "
              f"| {verdict(mib(max(idle)) <= IDLE_MIB)} |")
    if peaks:
        print(f"| peak RSS ≤ {PEAK_MIB:.0f} MiB | {mib(max(peaks)):.1f} MiB (largest of {len(peaks)}) "
              f"| {verdict(mib(max(peaks)) <= PEAK_MIB)} |")
    print()


for results in sys.argv[1:]:
    report(results)
