"""The HTML report of `cnnscope demo`: the page (`page`) and one module per section."""

from cnnscope.app.report.page import (
    Figure,
    ReportContext,
    Section,
    build_report,
    render_html,
    section_builders,
)

__all__ = ["Figure", "ReportContext", "Section", "build_report", "render_html", "section_builders"]
