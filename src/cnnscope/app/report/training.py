"""The training section of the demo report."""

from cnnscope.training.loop import report_section  # noqa: F401  (moving here)
