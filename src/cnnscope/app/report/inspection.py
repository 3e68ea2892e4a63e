"""The inspection section of the demo report."""

from cnnscope.figures.inspection import report_section  # noqa: F401  (moving here)
