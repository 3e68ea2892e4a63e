"""The HTML report of `cnnscope demo`: sections of figures with captions, in one folder.

Each module of `cnnscope.app.report` contributes a section through a function
`report_section(ctx)` that writes its pictures into `ctx.folder` and returns a `Section`;
this module only runs them and lays them out.
"""

from __future__ import annotations

import html
import importlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cnnscope.files import write_text

# (module, function) pairs, in report order.
SECTION_BUILDERS: list[tuple[str, str]] = [
    ("cnnscope.app.report.training", "report_section"),
    ("cnnscope.app.report.evaluation", "report_section"),
    ("cnnscope.app.report.inspection", "report_section"),
    ("cnnscope.app.report.oip", "report_section"),
    ("cnnscope.app.report.methods", "report_section"),
    ("cnnscope.app.report.dream", "report_section"),
    ("cnnscope.app.report.compare", "report_section"),  # only with `demo --compare OTHER`
]


@dataclass
class Figure:
    path: str  # relative to the report folder
    caption: str


@dataclass
class Section:
    title: str
    intro: str = ""
    figures: list[Figure] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)


@dataclass
class ReportContext:
    """What a section builder gets: the model, its data, where to write, and whether to be quick."""

    model: object
    config: dict
    mnist: object
    model_dir: Path
    folder: Path
    device: object = "cpu"
    seed: int = 0
    quick: bool = False  # tests: smaller workloads, same code paths
    progress: bool = True
    compare: Path | None = None  # another checkpoint to compare the model with (`demo --compare`)
    runs: dict = field(default_factory=dict)  # OIP runs one section made for another (`ZOO_RUN`: the articles' zoo)


def section_builders() -> list[Callable[[ReportContext], Section | None]]:
    return [getattr(importlib.import_module(module_name), function_name)
            for module_name, function_name in SECTION_BUILDERS]


def build_report(ctx: ReportContext, log: Callable[[str], None] = print) -> Path:
    """Run every section builder and write `index.html`; returns its path."""
    ctx.folder.mkdir(parents=True, exist_ok=True)
    sections = []
    for builder in section_builders():
        started = time.perf_counter()
        section = builder(ctx)
        if section is None:  # a section that does not apply (e.g. no model to compare with)
            continue
        log(f"  {section.title}: {time.perf_counter() - started:.1f} s")
        sections.append(section)
    return write_text(ctx.folder / "index.html", render_html(sections, ctx)) and ctx.folder / "index.html"


def render_html(sections: list[Section], ctx: ReportContext) -> str:
    esc = html.escape
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<title>cnnscope report</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}"
        "figure{display:inline-block;margin:.5em;vertical-align:top;max-width:100%}"
        "figure img{max-width:100%;image-rendering:pixelated;border:1px solid #ddd}"
        "figcaption{font-size:.9em;color:#444;max-width:520px}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}nav a{margin-right:1em}</style>",
        "</head><body>",
        "<h1>cnnscope report</h1>",
        f"<p>Model: <code>{esc(str(ctx.model_dir))}</code></p>",
        "<nav>" + "".join(f"<a href='#s{i}'>{esc(s.title)}</a>" for i, s in enumerate(sections)) + "</nav>",
    ]
    for i, section in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{esc(section.title)}</h2>")
        if section.intro:
            parts.append(f"<p>{esc(section.intro)}</p>")
        if section.facts:
            rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(str(v))}</td></tr>" for k, v in section.facts.items())
            parts.append(f"<table>{rows}</table>")
        for figure in section.figures:
            parts.append(
                f"<figure><img src='{esc(figure.path)}' alt='{esc(figure.caption)}'>"
                f"<figcaption>{esc(figure.caption)}</figcaption></figure>"
            )
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)
