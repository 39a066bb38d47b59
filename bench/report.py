#!/usr/bin/env python3
"""Turn bench/results/results.jsonl into report.md and chart.svg, and print
the table. Each service scenario is compared with its ceiling from the same
run: nginx serving a static file of the same size over the same TLS (a
paint's, or a list page's), at the same number of connections, measured
just before the row (the machine drifts over minutes) and in the ceiling
rows at the start. pgbench -S
-M prepared is listed as PostgreSQL's own ceiling."""
import json
import os
import sys


def load(out):
    with open(os.path.join(out, "results.jsonl")) as f:
        return [json.loads(line) for line in f if line.strip()]


def ceiling_for(r, rows):
    """The row r is measured against: the one its "ceiling" names, at the
    same number of connections, from the same run."""
    if not r.get("ceiling"):
        return None
    return next((x for x in rows if x["scenario"] == r["ceiling"]
                 and x["connections"] == r["connections"]), None)


def fmt(v, unit=""):
    return "–" if v is None else f"{v:,.1f}{unit}"


def table(rows):
    head = ("| scenario | conns | req/s | p50 ms | p90 ms | p99 ms | max ms | statuses | "
            "socket errors | peak db conns | conns opened | db checkouts per request | "
            "vs ceiling just before | vs ceiling row |")
    lines = [head, "|" + "---|" * 14]
    for r in rows:
        c = ceiling_for(r, rows)
        ratio = f"{r['rps'] / c['rps']:.2f} of {c['scenario']}" if c else "(ceiling)"
        a = r.get("adjacent_ceiling")
        adjacent = f"{r['rps'] / a['rps']:.2f} (static {a['rps']:,.0f} req/s)" if a else "–"
        opened = "–" if r.get("opened") is None else str(r["opened"])
        checkouts = "–" if r.get("checkouts") is None else f"{r['checkouts'] / max(r['requests'], 1):.3f}"
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(r["statuses"].items())) or "–"
        lines.append(f"| {r['scenario']} | {r['connections']} | {r['rps']:,.0f} | {fmt(r['p50'])} | "
                     f"{fmt(r['p90'])} | {fmt(r['p99'])} | {fmt(r['max'])} | {statuses} | "
                     f"{r.get('socket_errors', 0)} | {r['peak_db_connections']} | {opened} | {checkouts} | {adjacent} | {ratio} |")
    return "\n".join(lines)


def baseline(rows):
    """Rows named "... [baseline]" and "... [current]" (BENCH_BASELINE):
    the current build's throughput as a share of the baseline's, summed
    over the alternating rounds."""
    pairs = {}
    for r in rows:
        for which in ("baseline", "current"):
            tag = f" [{which}]"
            if r["scenario"].endswith(tag):
                pairs.setdefault(r["scenario"][:-len(tag)], {}).setdefault(which, []).append(r["rps"])
    lines = []
    for name, p in pairs.items():
        if p.get("baseline") and p.get("current"):
            b, c = sum(p["baseline"]), sum(p["current"])
            lines.append(f"| {name} | {b / len(p['baseline']):,.0f} | {c / len(p['current']):,.0f} | "
                         f"{100.0 * (c - b) / b:+.1f} % |")
    if not lines:
        return ""
    return ("| scenario (64 conns) | baseline req/s | this build req/s | change |\n"
            "|---|---|---|---|\n" + "\n".join(lines))


def chart(rows, path):
    """Bars of requests/s per scenario (ceilings in grey), p99 as dots."""
    w, h, left, top, bottom = 980, 60 + 26 * len(rows), 330, 40, 30
    max_rps = max(r["rps"] for r in rows) or 1
    max_p99 = max((r["p99"] or 0) for r in rows) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
             f'font-family="sans-serif" font-size="12">',
             '<rect width="100%" height="100%" fill="#fff"/>',
             f'<text x="{left}" y="20" font-weight="bold">requests/s (bars) and p99 latency '
             f'(dots, scale 0–{max_p99:.0f} ms)</text>']
    span = w - left - 80
    for i, r in enumerate(rows):
        y = top + i * 26
        ceiling = not r.get("ceiling")
        bw = span * r["rps"] / max_rps
        parts.append(f'<text x="{left - 8}" y="{y + 14}" text-anchor="end">'
                     f'{r["scenario"]} ({r["connections"]})</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{bw:.1f}" height="16" '
                     f'fill="{"#b8b8c0" if ceiling else "#2457c5"}"/>')
        parts.append(f'<text x="{left + bw + 4:.1f}" y="{y + 14}">{r["rps"]:,.0f}</text>')
        if r["p99"] is not None:
            cx = left + span * r["p99"] / max_p99
            parts.append(f'<circle cx="{cx:.1f}" cy="{y + 10}" r="4" fill="#d3212d"/>')
    parts.append(f'<text x="{left}" y="{h - 8}" fill="#555">grey: ceilings measured in the same run; '
                 f'red dots: p99</text></svg>')
    with open(path, "w") as f:
        f.write("\n".join(parts))


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "results")
    rows = load(out)
    t = table(rows)
    b = baseline(rows)
    with open(os.path.join(out, "report.md"), "w") as f:
        f.write("# Benchmark report\n\nOne run of `make bench` on this machine (loopback only).\n\n")
        f.write(t + "\n\n![chart](chart.svg)\n")
        if b:
            f.write("\n## Against the baseline build\n\n" + b + "\n")
    chart(rows, os.path.join(out, "chart.svg"))
    print(t)
    if b:
        print("\nagainst the baseline build (alternating rounds, same stack):\n" + b)
    print(f"\nreport: {out}/report.md, chart: {out}/chart.svg")


if __name__ == "__main__":
    main()
