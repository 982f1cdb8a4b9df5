#!/usr/bin/env python3
"""Medians over repeated chat-bench runs: results/<workload>.json and results/SUMMARY.md.

usage: summarize.py --results DIR RAW.json...   (run.sh calls it; rerun by hand on results/raw/*.json)
       summarize.py --side-by-side DIR           (peers-cb.sh: DIR/<server>/w3.json, w2.json -> markdown)
"""
import argparse
import json
import os
import statistics
import sys
from collections import defaultdict


def med(values):
    vals = [v for v in values if v is not None]
    return statistics.median(vals) if vals else None


def lower_med(values):
    vals = sorted(v for v in values if v is not None)
    return vals[(len(vals) - 1) // 2] if vals else None


def f(v, d=1):
    if v is None:
        return "-"
    if isinstance(v, float) and abs(v) >= 1000:
        return f"{v:,.0f}"
    return f"{v:,.{d}f}" if isinstance(v, float) else f"{v:,}"


def lat(step, kind, key):
    return (step.get(kind) or {}).get(key)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--results")
    ap.add_argument("--side-by-side")
    ap.add_argument("raw", nargs="*")
    a = ap.parse_args()
    if a.side_by_side:
        print(side_by_side(a.side_by_side))
        return
    if not a.results:
        ap.error("--results or --side-by-side is required")
    runs = defaultdict(list)
    for p in a.raw:
        try:
            with open(p) as fh:
                r = json.load(fh)
        except (OSError, ValueError) as e:
            print(f"skip {p}: {e}", file=sys.stderr)
            continue
        wl = r.get("workload")
        key = wl + (f"-n{r['params']['conns']}" if wl == "w1" and "params" in r else "")
        runs[key].append(r)

    labels = sorted({r.get("label", "chatd") for rs in runs.values() for r in rs}) or ["chatd"]
    md = [f"# {', '.join(labels)} benchmark summary (chat-bench)", "",
          "Medians over the runs listed; `ok` counts runs whose checks passed. Raw runs: `raw/`.", ""]
    out = {}
    for key in sorted(runs):
        rs = runs[key]
        srv = rs[0].get("label", "chatd")
        oks = sum(1 for r in rs if r.get("ok"))
        s = [r.get("summary", {}) for r in rs]
        res = {"workload": key, "runs": len(rs), "runs_ok": oks, "files_started": [r.get("started_at") for r in rs]}
        if key.startswith("w1"):
            for k in ("conns_held_at_end", "connect_rate_per_s", "rss_per_conn_kb", "kernel_tcp_mem_per_conn_kb",
                      "idle_cpu_pct_of_core", "rss_before_kb", "rss_held_kb", "connect_p99_ms", "server_cpu_connect_s"):
                res[k] = med([x.get(k) for x in s])
            users = s[0].get("users") if s else None
            md += [f"## W1 idle connections, N = {key[4:]} ({users} users; {oks}/{len(rs)} runs ok)", "",
                   "| held | connect+auth /s | chatd RSS per conn KB | kernel TCP mem per conn KB | idle CPU % of a core | chatd RSS before -> held MB |",
                   "|---|---|---|---|---|---|",
                   f"| {f(res['conns_held_at_end'], 0)} | {f(res['connect_rate_per_s'], 0)} | {f(res['rss_per_conn_kb'], 2)} | "
                   f"{f(res['kernel_tcp_mem_per_conn_kb'], 2)} | {f(res['idle_cpu_pct_of_core'], 2)} | "
                   f"{f((res['rss_before_kb'] or 0) / 1024)} -> {f((res['rss_held_kb'] or 0) / 1024)} |", ""]
        elif key in ("w2", "w3"):
            groups = key == "w3"
            by_rate = defaultdict(list)
            for r in rs:
                for st in r.get("steps", []):
                    if not st.get("refine"):
                        by_rate[st["rate"]].append(st)
            res["steps"] = []
            head = (f"| R msg/s | runs | passed | ack p50 | ack p99 | deliver p50 | p90 | p99 | p99.9 | max | lost | dup | errors | {srv} CPU util | "
                    + (f"deliveries/s | deliveries per {srv} CPU-s |" if groups else f"msgs per {srv} CPU-s |"))
            md += [f"## {'W3 group fan-out' if groups else 'W2 one-to-one'} ({oks}/{len(rs)} runs ok; latency ms, medians)", "", head,
                   "|" + "---|" * head.count("|")[:-1] if False else "|" + "---|" * (head.count("|") - 1)]
            for rate in sorted(by_rate):
                sts = by_rate[rate]
                row = {"rate": rate, "runs": len(sts), "passed": sum(1 for x in sts if x.get("pass"))}
                for name, kind, k in (("ack_p50", "ack_latency", "p50_ms"), ("ack_p99", "ack_latency", "p99_ms"),
                                      ("p50", "deliver_latency", "p50_ms"), ("p90", "deliver_latency", "p90_ms"),
                                      ("p99", "deliver_latency", "p99_ms"), ("p999", "deliver_latency", "p999_ms"),
                                      ("max", "deliver_latency", "max_ms")):
                    row[name] = med([lat(x, kind, k) for x in sts])
                for k in ("lost", "duplicates", "send_errors", "server_cpu_util_send", "deliveries_per_s",
                          "deliveries_per_server_cpu_s", "messages_per_server_cpu_s"):
                    row[k] = med([x.get(k) for x in sts])
                res["steps"].append(row)
                tail = (f"{f(row['deliveries_per_s'], 0)} | {f(row['deliveries_per_server_cpu_s'], 0)} |" if groups
                        else f"{f(row['messages_per_server_cpu_s'], 0)} |")
                md.append(f"| {f(rate, 0)} | {row['runs']} | {row['passed']} | {f(row['ack_p50'], 3)} | {f(row['ack_p99'], 3)} | "
                          f"{f(row['p50'], 3)} | {f(row['p90'], 3)} | {f(row['p99'], 3)} | {f(row['p999'], 3)} | {f(row['max'], 3)} | "
                          f"{f(row['lost'], 0)} | {f(row['duplicates'], 0)} | {f(row['send_errors'], 0)} | "
                          f"{f(row['server_cpu_util_send'], 2)} | {tail}")
            peaks = [x.get("max_rate_pass") for x in s]
            res["max_rate_pass_per_run"] = peaks
            res["max_rate_pass"] = lower_med(peaks)
            if groups:
                res["max_deliveries_per_s_pass"] = None if res["max_rate_pass"] is None else res["max_rate_pass"] * (rs[0]["params"]["group_size"] - 1)
                res["deliveries_per_server_cpu_s_at_max"] = med([x.get("deliveries_per_server_cpu_s_at_max") for x in s])
                res["p99_ms_at_max"] = med([x.get("p99_ms_at_max") for x in s])
                md += ["", f"Highest passing rate (p99 < limit, no loss) per run: {peaks}; lower median **{f(res['max_rate_pass'], 0)} msg/s** = "
                       f"**{f(res['max_deliveries_per_s_pass'], 0)} deliveries/s**, {f(res['deliveries_per_server_cpu_s_at_max'], 0)} deliveries "
                       f"per {srv} CPU-s at that rate (median), p99 {f(res['p99_ms_at_max'], 2)} ms.", ""]
            else:
                res["half_peak_rate"] = lower_med([x.get("half_peak_rate") for x in s])
                res["p99_ms_at_half_peak"] = med([x.get("p99_ms_at_half_peak") for x in s])
                md += ["", f"Peak passing rate per run: {peaks}; lower median **{f(res['max_rate_pass'], 0)} msg/s**; "
                       f"p99 at half the peak ({f(res['half_peak_rate'], 0)} msg/s): **{f(res['p99_ms_at_half_peak'], 3)} ms**.", ""]
        elif key == "w4":
            for k in ("messages", "insert_rate_per_s", "latest_p50_ms", "latest_p99_ms", "older_p50_ms", "older_p99_ms"):
                res[k] = med([x.get(k) for x in s])
            md += [f"## W4 history ({f(res['messages'], 0)} messages; {oks}/{len(rs)} runs ok; ms)", "",
                   "| insert msg/s | latest-50 p50 | latest-50 p99 | older page p50 | older page p99 |", "|---|---|---|---|---|",
                   f"| {f(res['insert_rate_per_s'], 0)} | {f(res['latest_p50_ms'], 3)} | {f(res['latest_p99_ms'], 3)} | "
                   f"{f(res['older_p50_ms'], 3)} | {f(res['older_p99_ms'], 3)} |", ""]
        elif key == "w5":
            for k in ("acked_per_s", "ack_p50_ms", "ack_p99_ms", "server_cpu_s", "messages_per_server_cpu_s", "send_errors", "duplicates"):
                res[k] = med([x.get(k) for x in s])
            p = rs[0].get("params", {})
            md += [f"## W5 durable ingest ({p.get('senders')} senders x {p.get('window')} in flight, {p.get('duration_s')} s; {oks}/{len(rs)} runs ok)", "",
                   "| acked msg/s | ack p50 ms | ack p99 ms | msgs per chatd CPU-s | errors |", "|---|---|---|---|---|",
                   f"| {f(res['acked_per_s'], 0)} | {f(res['ack_p50_ms'], 3)} | {f(res['ack_p99_ms'], 3)} | "
                   f"{f(res['messages_per_server_cpu_s'], 0)} | {f(res['send_errors'], 0)} |", ""]
        out[key] = res
        with open(os.path.join(a.results, f"{key}.json"), "w") as fh:
            json.dump(res, fh, indent=1)
    with open(os.path.join(a.results, "SUMMARY.md"), "w") as fh:
        fh.write("\n".join(md) + "\n")
    print("\n".join(md))


def side_by_side(root):
    """One table per workload: every server under root/<server>/ (chat-bench runs), ratios to chatd."""
    servers = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    servers.sort(key=lambda d: (d != "chatd", d))

    def load(srv, wl):
        try:
            with open(os.path.join(root, srv, f"{wl}.json")) as fh:
                return json.load(fh)
        except (OSError, ValueError):
            return None

    def ratio(ours, theirs):
        return f"{ours / theirs:.2f}x" if ours and theirs else "-"

    md = ["# chatd and its peers, same driver (chat-bench), medians", "",
          "Every server on this machine with chat-bench on the same 2 cores; chatd persists every message "
          "(SQLite, fsync'd group commit before the ack), Socket.IO writes each message to SQLite (WAL, "
          "synchronous=NORMAL: no fsync per commit), NATS persists nothing. Ratios are chatd / server."]
    def table(wl, title, head, row):
        """One row per server with results for `wl`: row(results, chatd's results) -> cells."""
        nonlocal md
        base = load("chatd", wl) or {}
        md += ["", title, "", "| server | runs ok | " + " | ".join(head) + " |", "|---" * (len(head) + 2) + "|"]
        for srv in servers:
            r = load(srv, wl)
            if r:
                md.append(f"| {srv} | {r['runs_ok']}/{r['runs']} | " + " | ".join(row(r, base)) + " |")

    def at_rate(r, rate, key):
        for st in (r or {}).get("steps", []):
            if st["rate"] == rate:
                return st.get(key)
        return None

    def at_peak(r, key):
        return at_rate(r, (r or {}).get("max_rate_pass"), key)

    table("w3", "## W3 group fan-out (20 groups x 100 members, p99 < 100 ms, no loss)",
          ["highest passing msg/s per run", "deliveries/s (lower median)", "deliveries per server CPU-s at that rate",
           "p99 ms there", "chatd / server deliveries/s", "chatd / server per CPU-s"],
          lambda r, b: [str(r.get("max_rate_pass_per_run")), f(r.get("max_deliveries_per_s_pass"), 0),
                        f(r.get("deliveries_per_server_cpu_s_at_max"), 0), f(r.get("p99_ms_at_max"), 2),
                        ratio(b.get("max_deliveries_per_s_pass"), r.get("max_deliveries_per_s_pass")),
                        ratio(b.get("deliveries_per_server_cpu_s_at_max"), r.get("deliveries_per_server_cpu_s_at_max"))])
    table("w2", "## W2 one-to-one (1000 users in 500 pairs, p99 < 100 ms, no loss)",
          ["p99 ms at 1000 msg/s", "peak passing msg/s per run", "msgs per server CPU-s at the peak",
           "p99 ms at half the peak", "chatd / server peak", "chatd / server per CPU-s"],
          lambda r, b: [f(at_rate(r, 1000, "p99"), 2), str(r.get("max_rate_pass_per_run")),
                        f(at_peak(r, "messages_per_server_cpu_s"), 0), f(r.get("p99_ms_at_half_peak"), 2),
                        ratio(b.get("max_rate_pass"), r.get("max_rate_pass")),
                        ratio(at_peak(b, "messages_per_server_cpu_s"), at_peak(r, "messages_per_server_cpu_s"))])
    return "\n".join(md) + "\n"


if __name__ == "__main__":
    main()
