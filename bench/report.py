"""bench.json -> bench.md: the goals first, then end-to-end, passthrough and stage tables, machine and versions."""

from __future__ import annotations

from typing import Any

GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0
GOAL_BYTES_PER_USER = 1024.0
GOAL_OVER_QUIX = 2.0  # the kafka engine at least twice the quix-streams reference's rate (issue 12)
REFERENCE = "quix-streams reference"


def _fmt(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float | int) and not isinstance(value, bool):
        return f"{value:,.{digits}f}"
    return str(value)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_fmt(c) if not isinstance(c, str) else c for c in row) + " |" for row in rows]
    return [*lines, ""]


def goals(e2e: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per goal and engine: measured value, target, met or not."""
    out = []
    for engine, ratio in e2e.get("engine_over_quix", {}).items():
        if engine.startswith("kafka"):
            out.append({"goal": f"{engine} engine / quix reference", "value": ratio, "target": f">= {GOAL_OVER_QUIX}",
                        "met": ratio >= GOAL_OVER_QUIX})
    for run in e2e.get("runs", []):
        engine = run["engine"]
        if engine == REFERENCE:  # a yardstick, not one of ours: its ratios are in the table
            continue
        if run["mode"] == "max":
            ratio = run.get("ratio_to_passthrough")
            out.append({"goal": f"{engine}: end-to-end / passthrough", "value": ratio, "target": f">= {GOAL_RATIO}",
                        "met": ratio is not None and ratio >= GOAL_RATIO})
            tx = run.get("ratio_to_transactional_passthrough")
            out.append({"goal": f"{engine}: end-to-end / transactional passthrough (context)", "value": tx,
                        "target": f">= {GOAL_RATIO}", "met": tx is not None and tx >= GOAL_RATIO})
            per_user = run["redis"]["bytes_per_user_key_mean"]
            out.append({"goal": f"{engine}: Redis bytes per user (user key, mean)", "value": per_user,
                        "target": f"<= {GOAL_BYTES_PER_USER:.0f}", "met": per_user <= GOAL_BYTES_PER_USER})
        elif run["mode"] == "50pct":
            p99 = run.get("p99_ms")
            out.append({"goal": f"{engine}: p99 latency at 50 % of max (ms)", "value": p99,
                        "target": f"< {GOAL_P99_MS:.0f}", "met": p99 is not None and p99 < GOAL_P99_MS})
    return out


def markdown(result: dict[str, Any]) -> str:
    m = result["machine"]
    lines = ["# fraudstream benchmark", "",
             f"Command: `{m['command']}`  ", f"Started: {result['started_at']} (took {result['took_s']:.0f} s)  ",
             f"Machine: {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, load average at start "
             f"{m['load_average_at_start']}  ",
             "Versions: " + ", ".join(f"{k} {v}" for k, v in m["versions"].items()), ""]
    e2e = result.get("e2e")
    if e2e:
        lines += ["## Goals", ""]
        lines += _table(["goal", "measured", "target", "met"],
                        [[g["goal"], _fmt(g["value"], 3 if isinstance(g["value"], float) and g["value"] < 10 else 1),
                          g["target"], "yes" if g["met"] else "NO"] for g in goals(e2e)])
        lines += ["## End to end", "",
                  f"{e2e['events']:,} simulated events; publisher maximum {e2e['publisher_max_per_s']:,.0f}/s. "
                  "`max` drains a backlog (events/s over the middle 90 % of scores); paced runs publish at a fraction "
                  "of that engine's max, latency = score record's Kafka timestamp - transaction's publish "
                  "timestamp.", ""]
        rows = []
        for name in ("passthrough_plain", "passthrough_transactional"):
            pt = e2e[name]
            rows.append([name.replace("_", " "), "max", "", pt["records_per_s"], "1.000" if name.endswith("plain")
                         else _fmt(pt["records_per_s"] / e2e["passthrough_plain"]["records_per_s"], 3),
                         "", "", "", pt["cpu_percent"], "", "", pt["peak_rss_mib"], ""])
        for run in e2e["runs"]:
            rate = run.get("events_per_s") if run["mode"] == "max" else run.get("published_per_s")
            ratio = run.get("ratio_to_passthrough")
            rows.append([run["engine"], run["mode"], _fmt(run.get("target_rate")), rate,
                         _fmt(ratio, 3) if ratio is not None else "", _fmt(run.get("p50_ms"), 1),
                         _fmt(run.get("p95_ms"), 1), _fmt(run.get("p99_ms"), 1), run["cpu_percent"],
                         _fmt(run.get("broker_cpu_percent")), _fmt(run.get("loadgen_cpu_percent")),
                         run["peak_rss_mib"], run["duplicates"]])
        lines += _table(["pipeline", "mode", "target/s", "events/s", "ratio", "p50 ms", "p95 ms", "p99 ms",
                         "CPU %", "broker CPU %", "publisher+reader CPU %", "peak RSS MiB", "dup scores"], rows)
        lines += ["CPU %: the worker (100 = one core busy); the broker and the bench's own publisher and score reader "
                  "share the machine's cores with it (see Machine).", ""]
        ref = next((r for r in e2e["runs"] if r["engine"] == REFERENCE), None)
        if ref is not None:
            over = ", ".join(f"{k} engine / quix reference {v:.2f}x"
                             for k, v in e2e.get("engine_over_quix", {}).items())
            lines += [f"{REFERENCE}: bench/quix/app.py, quixstreams {ref.get('quixstreams')} in its own virtualenv "
                      f"(pydantic validation, 1h/1d/7d/30d counts and means in RocksDB state, the same MLP weights in "
                      f"NumPy, {ref.get('processing_guarantee')}, commit_interval {ref.get('commit_interval_s')} s). "
                      f"{over or 'no engine max run to compare with'}.", ""]
        redis_rows = [[r["engine"], r["redis"]["users"], r["redis"]["bytes_per_user_key_mean"],
                       r["redis"]["bytes_per_user_key_p95"], r["redis"]["namespace_bytes_per_user"],
                       r["redis"].get("seen_bytes_per_transaction")]
                      for r in e2e["runs"] if r["mode"] == "max" and "redis" in r]
        lines += ["### Redis memory", ""]
        lines += _table(["engine", "users", "user key bytes (mean)", "user key bytes (p95)",
                         "whole namespace bytes / user", "duplicate check bytes / transaction"], redis_rows)
        for r in e2e["runs"]:
            if r["mode"] == "max" and "redis" in r:
                parts = ", ".join(f"{k} {v / max(r['redis']['users'], 1):,.0f}"
                                  for k, v in sorted(r["redis"]["namespace_bytes_by_kind"].items()))
                lines += [f"{r['engine']} namespace bytes per user by key kind: {parts}.  "]
        lines += [""]
    stages = result.get("stages")
    if stages:
        lines += ["## Stages", ""]
        fo = stages.get("fold")
        if fo:
            lines += [f"User feature fold, batch {fo['batch']}: reference Python kernels "
                      f"{fo['reference_us_per_event']} us/event, compiled batch fold "
                      f"{fo['compiled_us_per_event']} us/event "
                      f"({fo['speedup']}x); "
                      f"the whole core (decode, state, folds, score, outputs; in-memory store) "
                      f"{fo['core_us_per_event']} us CPU/event.", ""]
        v = stages["validation"]
        lines += [f"Validation, batch {v['batch']}: the core's decoder into columns (streamer/wire.py) "
                  f"{v['us_per_event']} us/event, {v['events_per_s']:,} events/s (one core); pydantic over the batch "
                  f"{v.get('pydantic_batch_us', '-')} us/event, pydantic per record "
                  f"{v.get('pydantic_per_record_us', '-')} us/event.", ""]
        lines += ["Feature state round trip (prepare_batch + commit_batch on Redis):", ""]
        lines += _table(["batch", "ms / batch", "events/s"],
                        [[r["batch"], _fmt(r["ms_per_batch"], 2), r["events_per_s"]] for r in stages["state"]])
        lines += scoring_lines(stages["scoring"])
        f = stages["offline_features"]
        lines += [f"Offline feature building: {f['rows']:,} rows in {f['seconds']} s = {f['rows_per_s']:,} rows/s.", ""]
        dr = stages.get("drift")
        if dr:
            core = f" ({dr['us_per_event'] / fo['core_us_per_event']:.1%} of the core's)" if fo else ""
            lines += [f"Drift watch (streamer/drift.py: score and {dr['features']} feature histograms, {dr['bins']} "
                      f"bins, per-hour counts), batch {dr['batch']}: {dr['us_per_event']} us/event{core}, "
                      f"{dr['us_per_batch']} us/batch.", ""]
        ex = stages.get("explanations")
        if ex:
            lines += ["Alert explanations (the scorer's attributions, alerted rows only; models/attribution.py):", ""]
            lines += _table(["scorer", "alerts / call", "ms / alert to explain", "ms / row to score",
                             "max |base + sum - score|"],
                            [[r["scorer"], r["alerts"], _fmt(r["explain_ms_per_alert"], 3),
                              _fmt(r["score_ms_per_row"], 4), f"{r['max_sum_error']:.1e}"] for r in ex["rows"]])
    api = result.get("api")
    if api:
        lines += ["## Scoring API", "",
                  f"`fraudstream api serve` ({api['http']}, one process, scorer {api['scorer']}) over "
                  f"{api['state_events']:,} streamed events; an open-loop generator (bench/http_load.py) at "
                  f"{api['rate']:,.0f} requests/s for {api['seconds']:.0f} s after {api['warmup_s']:.0f} s of warm-up, "
                  f"{api['request_users']:,} users' new events. Latency from each request's due time to its response "
                  "(no coordinated omission); service time from its send. The generator, the server, Redis and the "
                  f"broker share the machine's {api.get('cores', '?')} cores; 1-minute load average before and "
                  f"after the load: {api.get('load_average_1m')}.", ""]
        lines += _table(["requests", "achieved/s", "statuses", "p50 ms", "p95 ms", "p99 ms", "p99.9 ms", "max ms",
                         "service p99 ms", "send lag p99 ms", "server CPU %", "server RSS MiB", "loadgen CPU %",
                         "p99 < 10 ms"],
                        [[api["requests"], _fmt(api["achieved_per_s"], 1),
                          ", ".join(f"{k}: {v}" for k, v in sorted(api["statuses"].items())),
                          _fmt(api["p50_ms"], 2), _fmt(api.get("p95_ms"), 2), _fmt(api["p99_ms"], 2),
                          _fmt(api["p999_ms"], 2), _fmt(api["max_ms"], 2), _fmt(api["service_p99_ms"], 2),
                          _fmt(api.get("send_lag_p99_ms"), 2),
                          _fmt(api["server_cpu_percent"], 1), _fmt(api["server_peak_rss_mib"], 1),
                          _fmt(api["loadgen_cpu_percent"], 1), "yes" if api["met"] else "NO"]])
        cost = api.get("server_cost") or {}
        if cost:
            lines += ["Server CPU per request, closed loop: " + "; ".join(
                f"{name.replace('_', ' ')}: {c['cpu_ms_per_request']} ms ({c['requests_per_s']:,.0f} requests/s)"
                for name, c in cost.items()) + "."
                + (f" {cost['alone']['alert_share']:.1%} of these answers are alerts, each explained."
                   if "alert_share" in cost.get("alone", {}) else ""), ""]
    soak = result.get("soak")
    if soak:
        if "error" in soak:
            lines += ["## Soak", "", f"{soak['engine']} engine, {soak['rate']:,.0f} events/s for "
                      f"{soak['seconds']:.0f} s: FAILED: {soak['error'].splitlines()[0]}", ""]
        else:
            lines += ["## Soak", "", f"{soak['engine']} engine, {soak['rate']:,.0f} events/s for "
                      f"{soak['seconds']:.0f} s ({soak['scored']:,} of {soak['events']:,} scored, "
                      f"{soak['duplicates']} duplicates; last score "
                      f"{soak.get('drain_after_publish_s', 'n/a')} s after the last publish): RSS "
                      f"{soak['rss_start_mib']} -> {soak['rss_end_mib']} MiB after warm-up, slope "
                      f"{soak['rss_slope_mib_per_min']} MiB/min (bound {soak['slope_bound_mib_per_min']}: a "
                      f"64-byte-per-event leak): {'flat' if soak['flat'] else 'GROWING'}.", ""]
    train = result.get("training")
    if train:
        lines += ["## Training (one prequential fold, small simulated data)", "",
                  f"{train['rows']:,} rows ({train['frauds']:,} frauds), whole job {train['total_s']} s.", ""]
        lines += _table(["model", "fit s", "average precision"],
                        [[k, _fmt(v, 2), _fmt(train["average_precision"].get(k), 3)]
                         for k, v in train["fit_seconds"].items()])
    return "\n".join(lines)


def scoring_lines(sc: dict[str, Any]) -> list[str]:
    """The scoring stage's table: per batch size, each MLP path's latency (median ms per call) and rows/s side by
    side, a path that could not run as its reason ("no GPU"), then the stack (CPU)."""
    paths = [("mlp_numpy", "MLP CPU (NumPy)"), ("mlp_onnx_cpu", "MLP ONNX-CPU"), ("mlp_cuda", "MLP CUDA")]
    skipped = sc.get("skipped", {})
    header = ["batch"]
    for _, label in paths:
        header += [f"{label} ms", "rows/s"]
    header += ["stack ms", "rows/s"]
    rows = []
    for r in sc["rows"]:
        cells: list[Any] = [r["batch"]]
        for name, _ in paths:
            short = "no GPU" if name == "mlp_cuda" else "not installed"
            cells += [_fmt(r[f"{name}_ms"], 3), r[f"{name}_rows_per_s"]] if f"{name}_ms" in r else [short, "-"]
        rows.append([*cells, _fmt(r["stack_ms"], 3), r["stack_rows_per_s"]])
    diffs = [r[k] for r in sc["rows"] for k in r if k.endswith("_max_abs_diff")]
    crossover = sc.get("crossover")
    lines = [f"Scoring, one model call per batch on {sc.get('device', 'cpu')} (median of up to 30 calls; the MLP on "
             "each path, the stack on the CPU):", ""]
    lines += _table(header, rows)
    notes = [f"{name}: {why}" for name, why in skipped.items()]
    if diffs:
        notes.append(f"ONNX scores against NumPy's: max abs difference {max(diffs):.1e}")
    if "mlp_cuda" not in skipped:
        notes.append(f"CUDA beats NumPy from batch {crossover} up (streamer.gpu_min_batch)" if crossover
                     else "CUDA never beats NumPy here: keep streamer.device=cpu")
    return [*lines, *(f"- {n}" for n in notes), *([""] if notes else [])]
