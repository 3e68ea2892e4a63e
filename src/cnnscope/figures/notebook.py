"""A matplotlib figure that shows itself in Jupyter: the library's plots display inline without pyplot.

`matplotlib.figure.Figure` objects made without pyplot (as the library makes them: no global
state, no backend) show only as text in a notebook; `NotebookFigure` adds the `_repr_png_`
that IPython asks for. Everything else is an ordinary `Figure` (`savefig` as usual).
"""

from __future__ import annotations

from io import BytesIO

from matplotlib.figure import Figure

NOTEBOOK_DPI = 100


class NotebookFigure(Figure):
    """A `Figure` with a PNG representation for IPython's display."""

    def _repr_png_(self) -> bytes:
        buffer = BytesIO()
        self.savefig(buffer, format="png", dpi=NOTEBOOK_DPI, bbox_inches="tight")
        return buffer.getvalue()
