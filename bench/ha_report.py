#!/usr/bin/env python3
"""What HA=1 costs (bench/ha.sh): the rows and their ratios.

  ha_report.py meta SECONDS WARM CONNS SEED CPUS   the run's settings, a JSON line
  ha_report.py row CONFIG NAME CONNS WRK STATIC    one row as a JSON line, from the
                                                   wrk summaries of the row and of
                                                   the static file just before it
  ha_report.py note CONFIG TEXT                    a line to print under the table
  ha_report.py show                                a row (stdin) for people
  ha_report.py report JSONL MD                     the tables, printed and written

A configuration is "sockets" (the single node as `make run` has it: the
service reaches PostgreSQL and Redis over unix sockets), "tcp" (the same
stack, both over loopback TCP) or "ha" (HA=1: over loopback TCP, commits
wait for the synchronous standby, Redis found through the sentinels).
The ratios compare throughput (and p99) of the same load at the same
connections; "against the static file" divides each row by the static
file nginx served just before it, which takes the machine's drift
between the two stacks out."""
import json
import sys

CONFIGS = {
    "sockets": "single node, unix sockets",
    "tcp": "single node, TCP",
    "ha": "HA=1 (TCP, synchronous standby, sentinels)",
}
# (numerator, denominator, what the ratio shows)
RATIOS = [
    ("tcp", "sockets", "TCP / sockets: the transport alone"),
    ("ha", "tcp", "HA / single TCP: synchronous replication and sentinels"),
    ("ha", "sockets", "HA / single sockets: all of it, against `make run`"),
]


def non_2xx(r):
    return sum(n for s, n in r["statuses"].items() if not s.startswith("2"))


def row(config, name, conns, line, static):
    r = json.loads(line)
    s = json.loads(static) if static else None
    r.update(config=config, scenario=name, connections=int(conns),
             static={"rps": s["rps"], "p99": s["p99"]} if s else None)
    return r


def show(r):
    s = r.get("static")
    print("    %.0f req/s, p50 %.1f ms, p99 %.1f ms, statuses %s, socket errors %d%s"
          % (r["rps"], r["p50"], r["p99"], r["statuses"], r["socket_errors"],
             ", %.2f of the static file just before (%.0f req/s)" % (r["rps"] / s["rps"], s["rps"]) if s else ""))


def rows_table(rows):
    lines = ["| configuration | load | conns | req/s | p50 ms | p99 ms | max ms | non-2xx | "
             "socket errors | static file just before, req/s | vs static |",
             "|" + "---|" * 11]
    for r in rows:
        s = r.get("static")
        static = f"{s['rps']:,.0f} | {r['rps'] / s['rps']:.2f}" if s else "– | –"
        lines.append(
            f"| {CONFIGS[r['config']]} | {r['scenario']} | {r['connections']} | {r['rps']:,.0f} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {non_2xx(r)} | {r['socket_errors']} | "
            f"{static} |")
    return "\n".join(lines)


def ratios_table(rows):
    by = {(r["config"], r["scenario"], r["connections"]): r for r in rows}
    loads = []
    for r in rows:
        if (r["scenario"], r["connections"]) not in loads:
            loads.append((r["scenario"], r["connections"]))
    lines = ["| ratio | load | conns | req/s | req/s against the static file | p99 |",
             "|---|---|---|---|---|---|"]
    for num, den, what in RATIOS:
        for name, c in loads:
            a, b = by.get((num, name, c)), by.get((den, name, c))
            if not a or not b:
                continue
            norm = "–"
            if a.get("static") and b.get("static"):
                norm = f"{(a['rps'] / a['static']['rps']) / (b['rps'] / b['static']['rps']):.2f}"
            p99 = f"{a['p99'] / b['p99']:.2f}" if b["p99"] else "–"
            lines.append(f"| {what} | {name} | {c} | {a['rps'] / b['rps']:.2f} | {norm} | {p99} |")
    return "\n".join(lines)


def report(path, md):
    with open(path) as f:
        items = [json.loads(line) for line in f if line.strip()]
    meta = next((i["meta"] for i in items if "meta" in i), {})
    rows = [i for i in items if "scenario" in i]
    notes = [i for i in items if "note" in i]
    t, q = rows_table(rows), ratios_table(rows)
    head = ("One run of `make bench-ha` on this machine (loopback only, %s CPUs): %s s rows "
            "at %s connections (`wrk -t2`, each after a %s s warm-up of the same load), "
            "%s paints, one service process at the defaults." %
            (meta.get("cpus", "?"), meta.get("seconds", "?"), meta.get("conns", "?"),
             meta.get("warm", "?"), meta.get("seed", "?")))
    notes_md = "\n".join(f"- {CONFIGS[n['config']]}: {n['note']}" for n in notes)
    with open(md, "w") as f:
        f.write("# What HA=1 costs\n\n" + head + "\n\n" + t + "\n\n## Ratios\n\n" + q + "\n")
        if notes_md:
            f.write("\n## Checked during the run\n\n" + notes_md + "\n")
    print(t + "\n\n" + q)
    if notes_md:
        print("\n" + notes_md)
    print(f"\nreport: {md}")


def main():
    cmd = sys.argv[1] if len(sys.argv) > 1 else ""
    if cmd == "meta":
        seconds, warm, conns, seed, cpus = sys.argv[2:7]
        print(json.dumps({"meta": {"seconds": seconds, "warm": warm, "conns": conns,
                                   "seed": seed, "cpus": cpus}}))
    elif cmd == "row":
        print(json.dumps(row(*sys.argv[2:7])))
    elif cmd == "note":
        print(json.dumps({"config": sys.argv[2], "note": sys.argv[3]}))
    elif cmd == "show":
        show(json.loads(sys.stdin.read()))
    elif cmd == "report":
        report(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
