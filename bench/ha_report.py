#!/usr/bin/env python3
"""What HA=1 costs (bench/ha.sh): the rows and their ratios.

  ha_report.py meta SECONDS WARM SEED CPUS        the run's settings, a JSON line
  ha_report.py cpu FOLDER                          CPU seconds used so far by the
                                                   stack in FOLDER (its processes:
                                                   those whose working folder,
                                                   command line or environment
                                                   names it, with their reaped
                                                   children); two readings' difference
                                                   is what it used in between
  ha_report.py idle FOLDER SECONDS                 what that stack uses doing nothing,
                                                   and which of its processes
  ha_report.py row CONFIG NAME CONNS WRK STATIC CPU
                                                   one row as a JSON line, from the
                                                   wrk summaries of the row and of
                                                   the static file just before it,
                                                   and the stack's CPU seconds in it
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
import os
import sys
import time

CONFIGS = {
    "sockets": "single node, unix sockets",
    "tcp": "single node, TCP",
    "ha": "HA=1 (TCP, synchronous standby, sentinels)",
    "again": "single node, unix sockets, again",
}
# notes about a whole stack (both of the single node's transports)
STACKS = dict(CONFIGS, single="single node")
# (numerator, denominator, what the ratio shows)
RATIOS = [
    ("tcp", "sockets", "TCP / sockets: the transport alone"),
    ("ha", "tcp", "HA / single TCP: synchronous replication and sentinels"),
    ("ha", "sockets", "HA / single sockets: all of it, against `make run`"),
    ("again", "sockets", "single sockets again / first: the machine's drift over the run"),
]


def stack_cpu(folder):
    """CPU seconds used so far by the stack, by process kind: utime + stime
    + cutime + cstime of every process of the stack (a backend or a
    connection's process that ends in between is counted in its parent's
    cutime: the postmaster, nginx's master, which are of the stack). wrk
    is not: nothing of its names the folder; nor is this script. The kind
    is the command's name, with the data folder's for PostgreSQL and
    pg_autoctl (pg, pg1, pg2, monitor)."""
    folder = os.path.realpath(folder)
    hz = os.sysconf("SC_CLK_TCK")
    kinds = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        d = f"/proc/{pid}"
        if int(pid) == os.getpid():
            continue	# this script names the folder in its arguments
        try:
            cwd = cmdline = ""
            try:
                cwd = os.readlink(d + "/cwd")
            except OSError:
                pass
            with open(d + "/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
            mine = cwd.startswith(folder) or folder in cmdline
            if not mine:
                try:
                    with open(d + "/environ", "rb") as f:
                        mine = folder.encode() in f.read()
                except OSError:
                    pass
            if not mine:
                continue
            with open(d + "/stat") as f:
                comm, rest = f.read().split(" (", 1)[1].rsplit(")", 1)
            ticks = sum(int(x) for x in rest.split()[11:15])
            kind = comm
            if comm in ("postgres", "pg_autoctl"):
                data = cwd if cwd.startswith(folder) else next(
                    (a for a in cmdline.split("\0") if a.startswith(folder)), "")
                if data:
                    kind += " " + os.path.basename(data.rstrip("/"))
            kinds[kind] = kinds.get(kind, 0) + ticks / hz
        except (OSError, ValueError, IndexError):
            continue	# gone in the meantime
    return kinds


def idle(folder, seconds):
    """What the stack uses doing nothing: its share of one CPU over the
    seconds, and the kinds of process that used most of it."""
    a = stack_cpu(folder)
    time.sleep(seconds)
    b = stack_cpu(folder)
    used = {k: b[k] - a.get(k, 0) for k in b}
    total = sum(used.values())
    top = sorted(((v, k) for k, v in used.items() if v > 0), reverse=True)[:6]
    return ("%.1f %% of one CPU (%s)" % (100 * total / seconds, ", ".join(
        "%s %.1f %%" % (k, 100 * v / seconds) for v, k in top) or "nothing"))


def goodput(r):
    return sum(n for s, n in r["statuses"].items() if s.startswith("2")) / r["seconds"]


def cpu_us(r):
    return None if r.get("cpu_seconds") is None else 1e6 * r["cpu_seconds"] / max(r["requests"], 1)


def non_2xx(r):
    return sum(n for s, n in r["statuses"].items() if not s.startswith("2"))


def row(config, name, conns, line, static, cpu):
    r = json.loads(line)
    s = json.loads(static) if static else None
    r.update(config=config, scenario=name, connections=int(conns),
             static={"rps": s["rps"], "p99": s["p99"]} if s else None,
             cpu_seconds=float(cpu) if cpu else None)
    return r


def show(r):
    s = r.get("static")
    c = cpu_us(r)
    print("    %.0f 2xx/s (%.0f req/s), p50 %.1f ms, p99 %.1f ms, statuses %s, socket errors %d%s%s"
          % (goodput(r), r["rps"], r["p50"], r["p99"], r["statuses"], r["socket_errors"],
             ", stack CPU %.0f µs per request" % c if c is not None else "",
             ", %.2f of the static file just before (%.0f req/s)" % (r["rps"] / s["rps"], s["rps"]) if s else ""))


def rows_table(rows):
    lines = ["| configuration | load | conns | 2xx/s | req/s | p50 ms | p99 ms | max ms | non-2xx | "
             "socket errors | stack CPU µs per request | static file just before, req/s | 2xx/s vs static |",
             "|" + "---|" * 13]
    for r in rows:
        s = r.get("static")
        static = f"{s['rps']:,.0f} | {goodput(r) / s['rps']:.3f}" if s else "– | –"
        c = cpu_us(r)
        lines.append(
            f"| {CONFIGS[r['config']]} | {r['scenario']} | {r['connections']} | {goodput(r):,.0f} | "
            f"{r['rps']:,.0f} | {r['p50']:.1f} | {r['p99']:.1f} | {r['max']:.1f} | {non_2xx(r)} | "
            f"{r['socket_errors']} | {'–' if c is None else f'{c:,.0f}'} | {static} |")
    return "\n".join(lines)


def ratios_table(rows):
    by = {(r["config"], r["scenario"], r["connections"]): r for r in rows}
    loads = []
    for r in rows:
        if (r["scenario"], r["connections"]) not in loads:
            loads.append((r["scenario"], r["connections"]))
    lines = ["| ratio | load | conns | 2xx/s | 2xx/s against the static file | p99 | stack CPU per request |",
             "|---|---|---|---|---|---|---|"]
    for num, den, what in RATIOS:
        for name, c in loads:
            a, b = by.get((num, name, c)), by.get((den, name, c))
            if not a or not b:
                continue
            ga, gb = goodput(a), goodput(b)
            norm = cpu = "–"
            if a.get("static") and b.get("static") and gb:
                norm = f"{(ga / a['static']['rps']) / (gb / b['static']['rps']):.2f}"
            if cpu_us(a) is not None and cpu_us(b):
                cpu = f"{cpu_us(a) / cpu_us(b):.2f}"
            rate = f"{ga / gb:.2f}" if gb else "–"
            p99 = f"{a['p99'] / b['p99']:.2f}" if b["p99"] else "–"
            lines.append(f"| {what} | {name} | {c} | {rate} | {norm} | {p99} | {cpu} |")
    return "\n".join(lines)


def report(path, md):
    with open(path) as f:
        items = [json.loads(line) for line in f if line.strip()]
    meta = next((i["meta"] for i in items if "meta" in i), {})
    rows = [i for i in items if "scenario" in i]
    notes = [i for i in items if "note" in i]
    t, q = rows_table(rows), ratios_table(rows)
    head = ("One run of `make bench-ha` on this machine (loopback only, %s CPUs): %s s rows "
            "(`wrk -t2`, each after a %s s warm-up of the same load and next to the static "
            "file of a paint's size served by nginx just before it), %s paints, one service "
            "process at the defaults. 2xx/s counts the answers that did the work "
            "(a 503 is the service shedding load); the stack's CPU is that of all its "
            "processes (nginx, the service, PostgreSQL, Redis, on HA=1 also the standby, "
            "the monitor, the keepers and the sentinels), not wrk's." %
            (meta.get("cpus", "?"), meta.get("seconds", "?"), meta.get("warm", "?"),
             meta.get("seed", "?")))
    notes_md = "\n".join(f"- {STACKS[n['config']]}: {n['note']}" for n in notes)
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
        seconds, warm, seed, cpus = sys.argv[2:6]
        print(json.dumps({"meta": {"seconds": seconds, "warm": warm, "seed": seed, "cpus": cpus}}))
    elif cmd == "cpu":
        print(f"{sum(stack_cpu(sys.argv[2]).values()):.2f}")
    elif cmd == "idle":
        print(idle(sys.argv[2], float(sys.argv[3])))
    elif cmd == "row":
        print(json.dumps(row(*sys.argv[2:8])))
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
