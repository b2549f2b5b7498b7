"""edgebench reports: render a finished (or partial) run as text, rich tables or HTML.

This package renders plain dicts only and must not import ``harness``, ``devices`` or
``runners``; the caller converts its stored run into the ``data`` dict below.

Public API::

    reports.tables.summary_rows(data) -> list[dict]        # display strings per result
    reports.tables.format_summary(data) -> str             # fixed-width text, one table per device
    reports.tables.rich_summary(data) -> list[rich.table.Table]
    reports.tables.fmt_bytes / fmt_seconds / fmt_pct       # shared value formatters
    reports.plots.latency_distribution_svg(results_for_one_device) -> str | None
    reports.html.render_report(data) -> str
    reports.html.write_report(data, out_dir) -> Path       # writes out_dir/index.html

Input shape (any key may be missing or None; missing values render as "-")::

    {
      "run": {"id": "20261129-213000-ab12", "suite": "digits", "status": "finished",
              "created_at": "2026-11-29T21:30:00+00:00", "edgebench_version": "0.1.0",
              "commit": "abc1234" | None, "repetitions": 5},
      "devices": [
        {"name": "local", "transport": "local", "address": "", "tags": {"site": "desk"},
         "facts": {"os": "Linux", "os_release": "Debian GNU/Linux 12", "kernel": "6.1.0",
                   "arch": "x86_64", "cpu_model": "AMD EPYC", "cpu_cores": 2,
                   "memory_total_bytes": 25000000000, "python": "3.11.7",
                   "runtimes": {"onnxruntime": "1.32.0", "ai_edge_litert": "2.3.0"}}},
      ],
      "results": [
        {"device": "local",            # matches devices[].name
         "variant": "fp32-onnx", "model": "digits_cnn", "format": "onnx",
         "runtime": "onnxruntime", "threads": 1,
         "setting": "onnxruntime t=1",  # shown in the Runtime column
         "status": "done" | "failed" | "pending",
         "error": None | "AgentError: ...",
         "file_size_bytes": 40421,
         "accuracy": 0.955 | None, "accuracy_n": 360 | None,
         "latency_s": {"p50", "p90", "p95", "p99", "mean", "min", "max", "std", "cv", "n",
                       "throughput", "ci_low", "ci_high"} | None,   # seconds, n = count
         "init_s": 0.012 | None, "first_inference_s": 0.0004 | None,
         "peak_rss_bytes": 123456789 | None, "rss_after_load_bytes": ... | None,
         "samples_s": [float, ...],     # raw latencies in seconds, used for the plot
         "estimated": []},              # field names that are estimated, e.g. ["latency_s"]
      ],
    }

``estimated`` may name file_size_bytes, accuracy, latency_s, peak_rss_bytes, init_s or
first_inference_s; those figures get a "*" marker and the table an explanatory footnote.
"""
