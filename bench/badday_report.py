#!/usr/bin/env python3
"""The bad day's figures (bench/badday.sh).

  badday_report.py row MODE NAME DIR HOT   one row as a JSON line, from the
                                           wrk summaries and nginx's log in DIR
  badday_report.py show                    that line (stdin) for people
  badday_report.py report JSONL MD         the table and the issue's checks

nginx's access log gives each answer's status and request time (from the
first byte read to the last byte sent, millisecond resolution), so the
answers of one load split by status: the 2xx (goodput) apart from the
503s. The probes' latencies come from wrk (microseconds). A 499 is a
request wrk abandoned when its run ended (nginx's code for a client that
closed first): counted apart, not as an answer. The log, the pool's and
PostgreSQL's figures start once the loads have run BADDAY_WARMUP seconds,
as the probes do; wrk's own figures for a load include that start."""
import json
import os
import re
import sys

LINE = re.compile(r'"GET (\S+) HTTP/[^"]*" (\d{3}) \d+ .*?rt=([0-9.]+)')
PAINT = re.compile(r"^/admin/paints/(\d+)$")


def pct(values, q):
    if not values:
        return None
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def wrk_line(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        return json.loads(text) if text else None
    except FileNotFoundError:
        return None


def ranges(d):
    """Each load's name and id range, from badday.sh's "ranges" file."""
    out = []
    path = os.path.join(d, "ranges")
    if os.path.exists(path):
        for line in open(path):
            words = line.split()
            env = dict(w.split("=", 1) for w in words[2:] if "=" in w)
            out.append((words[0], int(env.get("BENCH_MIN_ID", 0)), int(env.get("BENCH_MAX_ID", 0)),
                        int(words[1])))
    return out


def classify(path, hot, loads):
    if path == "/healthz":
        return "healthz"
    if path == "/bench-healthz.json":
        return "static"
    if path.startswith("/admin/paints?"):
        return "poll"
    m = PAINT.match(path)
    if not m:
        return "other"
    i = int(m.group(1))
    if i <= hot:
        return "hot"
    for name, lo, hi, _ in loads:
        if lo <= i <= hi:
            return name
    return "other"


def from_log(d, hot, seconds):
    loads = ranges(d)
    by = {}
    with open(os.path.join(d, "access"), errors="replace") as f:
        for line in f:
            m = LINE.search(line)
            if not m:
                continue
            cls = classify(m.group(1), hot, loads)
            by.setdefault(cls, []).append((int(m.group(2)), float(m.group(3)) * 1000.0))
    out = {}
    for cls, answers in by.items():
        ok = [t for s, t in answers if 200 <= s < 300 or s == 304]
        shed = [t for s, t in answers if s == 503]
        statuses = {}
        for s, _ in answers:
            statuses[str(s)] = statuses.get(str(s), 0) + 1
        out[cls] = {"answers": len(answers), "statuses": statuses,
                    "goodput": len(ok) / seconds if seconds else None,
                    "ok_p50": pct(ok, 0.50), "ok_p99": pct(ok, 0.99),
                    "shed_p50": pct(shed, 0.50), "shed_p99": pct(shed, 0.99),
                    "all_p99": pct([t for s, t in answers if s != 499], 0.99)}
    return out


def row(mode, name, d, hot):
    probes = {k: wrk_line(os.path.join(d, "p-" + k)) for k in ("healthz", "hot", "poll", "static")}
    loads = {}
    for f in sorted(os.listdir(d)):
        if f.startswith("l-"):
            loads[f[2:]] = wrk_line(os.path.join(d, f))
    # the measured span: the probes' (the loads also ran through the warm-up before it)
    seconds = max((x["seconds"] for x in probes.values() if x), default=0)
    pools = []
    for f in ("pool0", "pool1"):
        try:
            pools.append(json.load(open(os.path.join(d, f))))
        except (OSError, ValueError):
            pools.append({})
    p0, p1 = pools
    delta = {k: p1.get(k, 0) - p0.get(k, 0) for k in ("checkouts", "timeouts", "opened")}
    admission = p1.get("admission")
    pg = []
    for f in ("pg0", "pg1"):
        try:
            pg.append({k: int(v) for k, v in (line.split() for line in open(os.path.join(d, f)) if line.strip())})
        except (OSError, ValueError):
            pg.append({})
    postgres = {k: pg[1][k] - pg[0].get(k, 0) for k in pg[1]}
    if "cpu_ns" in postgres:
        postgres["cpu_seconds"] = postgres.pop("cpu_ns") / 1e9
    conns = {name: c for name, _, _, c in ranges(d)}
    print(json.dumps({"mode": mode, "row": name, "seconds": seconds, "probes": probes, "conns": conns,
                      "loads": loads, "log": from_log(d, hot, seconds), "pool": delta,
                      "admission": admission, "postgres": postgres}))


def ms(v):
    return "–" if v is None else (f"{v:.2f}" if v < 10 else f"{v:.0f}")


def host_busy(pg):
    """How busy the machine's CPUs were during a row, from /proc/stat's jiffies."""
    total = pg.get("host_busy", 0) + pg.get("host_idle", 0)
    return pg.get("host_busy", 0) / total if total else 0.0


def pg_cpu(r):
    """PostgreSQL's share of one CPU during the row."""
    pg = r.get("postgres") or {}
    return f"{pg['cpu_seconds'] / r['seconds']:.3f}" if "cpu_seconds" in pg and r["seconds"] else "–"


def show_line(r):
    parts = []
    for k, p in r["probes"].items():
        if p:
            parts.append(f"{k} p50 {ms(p['p50'])} p99 {ms(p['p99'])} ms")
    print("    probes: " + "; ".join(parts))
    for name, w in r["loads"].items():
        lg = r["log"].get(name, {})
        print(f"    {name}: {w['rps']:.0f} req/s (wrk p99 {ms(w['p99'])} ms), statuses {w['statuses']}, "
              f"503 without Retry-After {w['no_retry_after']}; goodput {lg.get('goodput') or 0:.0f}/s, "
              f"2xx p99 {ms(lg.get('ok_p99'))} ms, 503 p99 {ms(lg.get('shed_p99'))} ms")
    print(f"    pool: {r['pool']}")
    pg = r.get("postgres") or {}
    if "cpu_seconds" in pg and r["seconds"]:
        print(f"    PostgreSQL: {pg_cpu(r)} CPU, {r['pool'].get('checkouts', 0) / r['seconds']:.0f} "
              f"checkouts/s, throttled in {pg.get('nr_throttled', 0)} of {pg.get('nr_periods', 0)} periods; "
              f"the machine {host_busy(pg):.0%} busy")


def show():
    show_line(json.loads(sys.stdin.read()))


def overload_checks(quiet, low, top):
    """The issue's checks of one overload row against the quiet row and the low row."""
    res, name = [], top["row"]
    for k in ("healthz", "hot"):
        q, t = quiet["probes"][k]["p99"], top["probes"][k]["p99"]
        res.append((f"{name}: {k} p99 within 3x of quiet ({ms(t)} vs {ms(q)} ms)", t <= 3 * q))
        st = (top["probes"].get("static") or {}).get("p99")
        if st:
            res.append((f"{name}: {k} p99 within 3x of nginx's static file in the same row "
                        f"({ms(t)} vs {ms(st)} ms)", t <= 3 * st))
    g_low = low["log"]["db"]["goodput"]
    tl = top["log"]["db"]
    g_top = tl["goodput"]
    res.append((f"{name}: goodput >= 90 % of {low['row']}'s ({g_top:.0f} vs {g_low:.0f}/s)",
                g_top >= 0.9 * g_low))
    others = {s: n for s, n in tl["statuses"].items()
              if not (s.startswith("2") or s in ("503", "499"))}
    w = top["loads"]["db"]
    res.append((f"{name}: every answer 2xx or 503 with Retry-After (others {others or 'none'}, "
                f"503 without it {w['no_retry_after']}, socket errors {w['socket_errors']})",
                not others and w["no_retry_after"] == 0 and w["socket_errors"] == 0))
    res.append((f"{name}: 2xx p99 <= 1 s ({ms(tl['ok_p99'])} ms)", (tl["ok_p99"] or 0) <= 1000))
    res.append((f"{name}: 503 p99 <= 50 ms ({ms(tl['shed_p99'])} ms, {tl['statuses'].get('503', 0)} of them)",
                (tl["shed_p99"] or 0) <= 50))
    return res


def checks(rows):
    """The issue's "done when", per mode, from that mode's rows."""
    out = []
    for mode in dict.fromkeys(r["mode"] for r in rows):
        rs = [r for r in rows if r["mode"] == mode]
        quiet = next((r for r in rs if r["row"] == "quiet"), None)
        dbs = sorted((r for r in rs if re.fullmatch(r"db \d+", r["row"])), key=lambda r: int(r["row"][3:]))
        polite = next((r for r in rs if "Retry-After" in r["row"]), None)
        # The check is the people's who think between clicks: people who
        # click again at once are themselves an overload (the other row).
        mix = next((r for r in rs if r["row"].startswith("mix") and "not thinking" not in r["row"]), None)
        if not quiet or len(dbs) < 2:
            continue
        low = dbs[0]
        res = []
        for top in [dbs[-1]] + ([polite] if polite else []):
            res += overload_checks(quiet, low, top)
        if mix:
            p, b = mix["log"].get("person"), mix["log"].get("background")
            if p and b:
                res.append((f"mix: person p99 <= half the polls' ({ms(p['all_p99'])} vs {ms(b['all_p99'])} ms, "
                            "every answer)", p["all_p99"] <= 0.5 * b["all_p99"]))
        out.append((mode, res))
    return out


def report(jsonl, md):
    rows = [json.loads(x) for x in open(jsonl) if x.strip()]
    head = ("| mode | row | /healthz p50 / p99 ms | hot GET p50 / p99 ms | poll p50 / p99 ms | "
            "static file p50 / p99 ms | "
            "load | conns | answers/s | goodput 2xx/s | 2xx p50 / p99 ms | 503s | 503 p99 ms | "
            "other statuses | cut by the end (499) | pool timeouts | PostgreSQL CPU | machine busy |")
    lines = [head, "|" + "---|" * 18]
    for r in rows:
        pr = r["probes"]
        pcols = " | ".join(f"{ms(pr[k]['p50'])} / {ms(pr[k]['p99'])}" if pr.get(k) else "–"
                           for k in ("healthz", "hot", "poll", "static"))
        loads = list(r["loads"].items()) or [("–", None)]
        for name, w in loads:
            lg = r["log"].get(name, {}) if w else {}
            st = lg.get("statuses", {})
            others = ", ".join(f"{s}: {n}" for s, n in sorted(st.items())
                               if not (s.startswith("2") or s in ("503", "499"))) or "–"
            conns = r.get("conns", {}).get(name, "–")
            lines.append(
                f"| {r['mode']} | {r['row']} | {pcols} | {name} | {conns} | "
                f"{(w['rps'] if w else 0):,.0f} | {(lg.get('goodput') or 0):,.0f} | "
                f"{ms(lg.get('ok_p50'))} / {ms(lg.get('ok_p99'))} | {st.get('503', 0)} | "
                f"{ms(lg.get('shed_p99'))} | {others} | {st.get('499', 0)} | {r['pool'].get('timeouts', 0)} | "
                f"{pg_cpu(r)} | {host_busy(r.get('postgres') or {}):.0%} |")
    text = "\n".join(lines)
    chk = []
    for mode, res in checks(rows):
        chk.append(f"\n**{mode}**\n")
        chk += [f"- [{'x' if ok else ' '}] {what}" for what, ok in res]
    with open(md, "w") as f:
        f.write("# The bad day\n\nOne run of `bench/badday.sh` on this machine (loopback only).\n\n")
        f.write(text + "\n")
        if chk:
            f.write("\n## The issue's checks\n" + "\n".join(chk) + "\n")
    print(text)
    print("\n".join(chk))
    print(f"\nreport: {md}")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "row":
        row(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]))
    elif cmd == "show":
        show()
    else:
        report(sys.argv[2], sys.argv[3])
