"""edgebench reports: render a finished (or partial) run as text, rich tables or HTML.

This package renders the records of ``runners.records`` and must not import ``harness``,
``devices``, ``suites`` or any other part of ``runners``.

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

Input: ``data`` is a ``runners.records.RunReport`` (``harness.results.report_data`` builds
it); ``results_for_one_device`` a list of its ``JobResult``. The fields, their units and
what None means are documented on the dataclasses in runners/records.py, the contract
between the store and these renderers. A None figure renders as "-"; a field named in
``JobResult.estimated`` gets a "*" wherever it is shown and its device a footnote.
``RunReport.comparison`` is the plain JSON of ``harness.compare``, rendered as
``reports.compare`` does.

Baseline: a result is a baseline when its ``baseline`` is True or its variant is
``run.baseline_variant``. Each other result on the same device compares against the
baseline that ran with the same ``setting`` (else the first baseline there); when its
``accuracy_retention`` is None it is derived as accuracy / that baseline's accuracy, and
the highlights' accuracy cost ("int8-onnx: -0.3 pp") is the difference in percentage
points from it. ``accuracy_meaningful`` False (random weights): the accuracy column shows
"n/a", the device gets a note, the highlights leave accuracy out, and the HTML report draws
file size vs latency instead of the accuracy-vs-latency Pareto plot.
"""
