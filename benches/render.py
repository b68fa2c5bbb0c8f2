"""Regenerates the README's benchmark section from docs/benchmarks/*.json.

Usage: render.py DOCS_BENCHMARKS_DIR README.md
Writes the section between `<!-- benchmarks:begin -->` and `<!-- benchmarks:end -->`
(creating a `## Benchmarks` section before `## Deploying` if the markers are missing),
and the same text to DOCS_BENCHMARKS_DIR/README.md. Missing result files leave their
part out, with a note.
"""

import json
import pathlib
import sys

BEGIN, END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def load(directory, name):
    path = directory / name
    return json.loads(path.read_text()) if path.exists() else None


def fmt_time(ns):
    if ns >= 1e6:
        return f"{ns / 1e6:.1f} ms"
    if ns >= 1e3:
        return f"{ns / 1e3:.2f} µs"
    return f"{ns:.0f} ns"


def fmt_int(x):
    return f"{x:,.0f}"


def pure_table(pure):
    rows = ["| benchmark | time per run | per item | items/s on one core |", "|---|---|---|---|"]
    order = sorted(pure, key=lambda k: (not k.startswith("intake"), not k.startswith("decision"), k))
    for key in order:
        r = pure[key]
        n = r["elements"] or 1
        per = r["mean_ns"] / n
        label = {
            "decision/per_lead": "dedup + routing + assignment decision, per lead",
            "ranking/34000_dealers_x_30_days": "ranking: 34,000 dealers × 30 days (aggregate, score, rank)",
        }.get(key, key.replace("intake/", "webhook verify + parse + normalise: "))
        unit = "dealer" if key.startswith("ranking") else ("lead" if key.startswith("decision") else "event")
        rows.append(
            f"| {label} | {fmt_time(r['mean_ns'])} ({n} {unit}s) | {fmt_time(per)} | {fmt_int(1e9 / per)} |"
        )
    return "\n".join(rows)


def work_table(mix):
    rows = [
        "| work (mix of a generated day) | n | AWS requests | of which | HTTP | RRU | WRU | handler ms | emulator ms |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for kind, w in mix["work"].items():
        ops = ", ".join(f"{op} {v:g}" for op, v in w["by_operation"].items())
        rows.append(
            f"| {kind} | {w['n']} | {w['aws_requests']:g} | {ops} | {w['http_requests']:g} | {w['rru']:g} | {w['wru']:g} | {w['handler_ms_mean']:.2f} | {w['emulator_ms_mean']:.2f} |"
        )
    return "\n".join(rows)


def cold_table(cold):
    hello = cold.get("hello", {}).get("p50_ms")
    rows = [
        "| binary | cold start p50 | min | max | ratio to hello-world | stripped size | invoke |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, c in sorted(cold.items(), key=lambda kv: (kv[0] != "hello", kv[0])):
        ratio = f"{c['p50_ms'] / hello:.2f}×" if hello else "-"
        rows.append(
            f"| {name} | {c['p50_ms']:.1f} ms | {c['min_ms']:.1f} | {c['max_ms']:.1f} | {ratio} | {c['binary_bytes'] / 2**20:.1f} MiB | `{c['invoke']}` ({c['invoke_status']}) |"
        )
    return "\n".join(rows)


def cost_table(mix):
    cost = mix["cost_per_million_leads"]
    a = cost["measured_durations"]["lines"]
    b = cost["if_each_aws_request_took_10ms"]["lines"]
    rows = [
        "| per 1 M leads (us-east-1) | quantity | USD | quantity, 10 ms per AWS request | USD |",
        "|---|---|---|---|---|",
    ]
    for x, y in zip(a, b):
        rows.append(
            f"| {x['item']} | {fmt_int(x['quantity'])} | {x['usd']:.2f} | {fmt_int(y['quantity'])} | {y['usd']:.2f} |"
        )
    rows.append(
        f"| **total** | | **{cost['measured_durations']['total_usd']:.2f}** | | **{cost['if_each_aws_request_took_10ms']['total_usd']:.2f}** |"
    )
    p = {k: f"{v:.10f}".rstrip("0").rstrip(".") for k, v in cost["prices_usd"].items()}
    prices = (
        f"Prices used (us-east-1 list prices, x86_64, free tiers ignored): Lambda ${p['lambda_per_million_requests']} per 1 M requests "
        f"and ${p['lambda_per_gb_s']} per GB-s at {cost['memory_mb']:.0f} MB (`MemorySize` in template.yaml); DynamoDB on-demand "
        f"${p['dynamodb_per_million_wru']} per 1 M write and ${p['dynamodb_per_million_rru']} per 1 M read request units; SQS standard "
        f"${p['sqs_per_million_requests']} per 1 M requests; API Gateway HTTP API ${p['http_api_per_million_requests']} per 1 M requests."
    )
    return "\n".join(rows), prices


def render(directory):
    machine = load(directory, "machine.json")
    pure = load(directory, "pure.json")
    emulator = load(directory, "emulator.json")
    cold = load(directory, "cold-start.json")
    out = []
    if machine:
        out.append(
            f"Measured {machine['date']} on {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB "
            f"({machine['rustc']}, commit {machine['commit']}, load average {machine['load_before']:.2f} at the start; "
            "the machine is shared, so treat small differences as noise). Regenerate with `infra/bench.sh` "
            "(release build, an emulator of its own, about 10 minutes on 2 cores after the first build); raw "
            "results and logs in `docs/benchmarks/`."
        )
    if pure:
        out += [
            "",
            f"**Pure compute** (`cargo bench -p leads-benches --bench pure`, criterion, release, one thread; measured "
            f"{max(r.get('measured_at', '') for r in pure.values())}). "
            "Inputs from the demo generator: a generated day for 300 dealers; the decision bench has the "
            "directory lookups done beforehand (in the function they are the DynamoDB reads counted below).",
            "",
            pure_table(pure),
        ]
    else:
        out += ["", "_Pure compute: not measured in this run._"]
    if emulator:
        mix, e2e = emulator["mix"], emulator["end_to_end"]
        per = mix["per_lead"]
        requests = sum(w["aws_requests"] * w["n"] for w in mix["work"].values())
        emulator_ms = sum(w["emulator_ms_mean"] * w["n"] for w in mix["work"].values())
        per_request = emulator_ms / requests if requests else 0
        out += [
            "",
            f"**Against the emulator** (`bench-emulator`: the real handlers in-process, every AWS request counted and "
            f"timed by the SDK interceptor `shared/aws/src/request_counter.rs`). A generated day for the sample directory "
            f"({mix['customers']} customers: {mix['webhooks']} webhooks incl. redeliveries and forged/stale/malformed calls, "
            f"{mix['leads_created']} leads created), one webhook at a time, each queue message through its consumer. "
            "Means per piece of work; RRU/WRU are DynamoDB request units estimated from the real request and response "
            "bodies (`benches/src/capacity.rs`); handler = the handler's wall time, emulator = the AWS round trips inside it "
            f"(the local stack: DynamoDB Local and moto's SQS, {per_request:.1f} ms per request on average in this run).",
            "",
            work_table(mix),
            "",
            f"Per lead created (all of the above divided by {mix['leads_created']}): {per['aws_requests']:g} AWS requests, "
            f"{per['rru']:g} RRU, {per['wru']:g} WRU, {per['sqs_requests']:g} SQS requests (sent + the trigger's receive "
            f"and delete), {per['lambda_invocations']:g} Lambda invocations, {per['lambda_ms']:g} ms billed.",
            "",
            f"**End to end**, webhook → webhook-intake → lead queue → lead-router → notification queue → notifier → the "
            f"consultant's WeCom message (local receiver), SQS trigger played by hand, {e2e['iterations']} fresh webhooks: "
            f"**p50 {e2e['latency_ms']['p50']:.1f} ms, p99 {e2e['latency_ms']['p99']:.1f} ms**. The emulator round trips "
            f"inside it, measured in the same run: p50 {e2e['emulator_round_trips_ms']['p50']:.1f} ms over "
            f"{e2e['round_trips']['p50']:g} requests, p99 {e2e['emulator_round_trips_ms']['p99']:.1f} ms; they are "
            f"{e2e['emulator_share']['p50'] * 100:.0f}% of the latency (p50 of the per-webhook ratio, p99 "
            f"{e2e['emulator_share']['p99'] * 100:.0f}%). The webhook itself is answered in p50 "
            f"{e2e['webhook_answer_ms']['p50']:.1f} ms, p99 {e2e['webhook_answer_ms']['p99']:.1f} ms "
            "(platforms allow 5 s). On AWS the SQS trigger's polling adds its own delay.",
        ]
    else:
        out += ["", "_Emulator measurements: not measured in this run._"]
    if cold:
        out += [
            "",
            "**Cold start**: time from exec to the first handled invoke, each release binary started by hand against "
            "`cargo lambda watch --only-lambda-apis` (the invoke queued first; process start, configuration, clients, "
            "`GET /next`, the handler, `POST /response`), next to a hello-world `lambda_runtime` binary "
            "(`benches/src/bin/hello.rs`) built the same way in the same run; sizes are the stripped release binaries "
            "(`strip = true`, thin LTO). Each function gets a cheap valid call on a still empty emulator: an unknown "
            "webhook source (404), an API call without a token (401), an empty SQS batch, a sweep with no brands, a "
            "ranking of an unknown brand (500 after one GetItem).",
            "",
            cold_table(cold),
        ]
    else:
        out += ["", "_Cold start: not measured in this run._"]
    if emulator:
        table, prices = cost_table(emulator["mix"])
        out += [
            "",
            "**Cost model**: AWS cost per 1 M leads, from the mix above (its totals divided by the leads created, so "
            "merges, redeliveries, rejected calls, CRM hand-offs and notification jobs are included). Lambda: one "
            "invocation per webhook, per queue message (batches of one, the low-traffic upper bound) and per "
            "notification job, billed per ms of the measured handler time (or with every AWS request taking 10 ms, a "
            "pessimistic in-region figure); SQS: messages sent plus the trigger's receive and delete per message.",
            "",
            table,
            "",
            prices
            + " Not included: storage (DynamoDB $0.25 per GB-month; raw payloads expire after 30 days by default), CloudWatch Logs and "
            "X-Ray, data transfer, Secrets Manager, the SQS triggers' empty polls (a fixed cost per queue, not per lead), the "
            "nightly ranking and the SLA sweeper (per dealer and per 5 minutes, not per lead). cn-north-1 / cn-northwest-1 are "
            "priced in CNY by the China regions' operators; multiply the quantities by their price list.",
        ]
    return "\n".join(out) + "\n"


def main():
    directory, readme = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    body = render(directory)
    (directory / "README.md").write_text("# Benchmark results\n\nGenerated by `infra/bench.sh` (`benches/render.py`).\n\n" + body)
    text = readme.read_text()
    block = f"{BEGIN}\n{body}{END}"
    if BEGIN in text and END in text:
        head, rest = text.split(BEGIN, 1)
        _, tail = rest.split(END, 1)
        text = head + block + tail
    else:
        section = f"## Benchmarks\n\n{block}\n\n"
        if "## Deploying" in text:
            text = text.replace("## Deploying", section + "## Deploying", 1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
    readme.write_text(text)
    print(body)


if __name__ == "__main__":
    main()
