"""edgebench reports: render a finished (or partial) run as text, rich tables or HTML.

This package renders plain dicts only and must not import ``harness``, ``devices``,
``runners`` or ``suites``; the caller converts its stored run into the ``data`` dict below.

Public API::

    reports.tables.summary_rows(data) -> list[dict]        # display strings per result
    reports.tables.device_rows(data) -> [(device, rows)]   # the same, grouped per device
    reports.tables.format_summary(data) -> str             # fixed-width text, one table per device
    reports.tables.rich_summary(data) -> list[rich.table.Table]
    reports.tables.device_highlights(results_for_one_device, baseline_variant=None) -> dict
    reports.tables.highlights_lines(highlights) -> list[str]
    reports.tables.fmt_bytes / fmt_seconds / fmt_pct / fmt_count / fmt_joules / fmt_watts /
                   fmt_hz / fmt_pp                         # shared value formatters
    reports.plots.latency_distribution_svg(results_for_one_device) -> str | None
    reports.plots.pareto_front(points) -> set[int]         # (cost, benefit) pairs
    reports.plots.pareto_svg(results_for_one_device) -> str | None   # accuracy vs p90 latency
    reports.plots.size_latency_svg(results_for_one_device) -> str | None
    reports.html.render_report(data) -> str
    reports.html.write_report(data, out_dir) -> Path       # writes out_dir/index.html

Input shape (any key may be missing or None; missing values render as "-")::

    {
      "run": {"id": "20261129-213000-ab12", "suite": "digits", "status": "finished",
              "created_at": "2026-11-29T21:30:00+00:00", "edgebench_version": "0.1.0",
              "commit": "abc1234" | None, "repetitions": 5,
              "baseline_variant": "fp32-onnx" | None},   # see "baseline" below
      "devices": [
        {"name": "local", "transport": "local", "address": "", "tags": {"site": "desk"},
         "facts": {"os": "Linux", "os_release": "Debian GNU/Linux 12", "kernel": "6.1.0",
                   "arch": "x86_64", "cpu_model": "AMD EPYC", "cpu_cores": 2,
                   "memory_total_bytes": 25000000000, "python": "3.11.7",
                   "runtimes": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0"}}},
      ],
      "results": [
        {"device": "local",            # matches devices[].name
         "variant": "int8-onnx", "model": "digits_cnn", "format": "onnx",
         "runtime": "onnxruntime", "threads": 1,
         "setting": "onnxruntime t=1",  # shown in the Runtime column
         "status": "done" | "failed" | "pending",
         "error": None | "AgentError: ...",
         # What the variant is (Technique column, Variants section of the HTML report):
         "recipe": ["export_onnx", "onnx_int8_static"],          # recipe step names
         "recipe_params": [{}, {"per_channel": True}] | None,    # one dict per step
         "techniques": ["export ONNX", "int8 static QDQ per-channel"] | None,  # human labels
         "description": "static QDQ, calibrated on 256 images" | None,
         # Model size:
         "file_size_bytes": 46212,
         "zstd_size_bytes": 36180 | None,   # shown when < 90% of file_size_bytes
         "params": 38282 | None, "nonzero_params": 19141 | None, "macs": 337536 | None,
         # Accuracy:
         "accuracy": 0.9722 | None, "accuracy_n": 360 | None,
         "accuracy_retention": 0.997 | None,   # accuracy / baseline accuracy, same device
         "baseline": True | False | None,      # this row is the baseline variant
         "accuracy_meaningful": True | False | None,   # False: random-weight latency model
         # Speed and memory:
         "latency_s": {"p50", "p90", "p95", "p99", "mean", "min", "max", "std", "cv", "n",
                       "throughput", "ci_low", "ci_high"} | None,   # seconds, n = count
         "init_s": 0.012 | None, "first_inference_s": 0.0004 | None,
         "peak_rss_bytes": 123456789 | None, "rss_after_load_bytes": ... | None,
         "samples_s": [float, ...],     # raw latencies in seconds, used for the plot
         # Energy / power:
         "energy_per_inference_j": 22.4e-6 | None,
         "mean_power_w": 6.05 | None, "idle_power_w": 4.15 | None,
         "power_rail": "RAPL package-0" | None, "power_sample_rate_hz": 1000.0 | None,
         "estimated": []},              # field names that are estimated, e.g. ["latency_s"]
      ],
    }

Baseline: a result is the baseline when its ``baseline`` is True; when ``baseline`` is None
or absent, when its variant is ``run.baseline_variant``. Each other result on the same
device compares against the baseline that ran with the same ``setting`` (else the first
baseline there). When ``accuracy_retention`` is missing it is derived as accuracy /
baseline accuracy. The highlights' accuracy cost ("int8-onnx: -0.3 pp") is the
difference in percentage points from that same baseline.

``accuracy_meaningful`` False (e.g. MobileNet with random weights): the accuracy column shows
"n/a", the device gets the note "accuracy is not meaningful for this model (random
weights)", the highlights leave accuracy out, and the HTML report draws file size vs
latency instead of the accuracy-vs-latency Pareto plot.

``estimated`` may name file_size_bytes, zstd_size_bytes, params, nonzero_params, macs,
accuracy, accuracy_retention, latency_s, peak_rss_bytes, init_s, first_inference_s,
energy_per_inference_j, mean_power_w, idle_power_w, power_rail or power_sample_rate_hz;
those figures get a "*" marker wherever they are shown (tables, highlights, power note,
plot labels) and the device an explanatory footnote.
"""
