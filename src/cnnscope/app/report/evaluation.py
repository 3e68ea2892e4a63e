"""The evaluation section of the demo report."""

from cnnscope.analysis.evaluation import report_section  # noqa: F401  (moving here)
