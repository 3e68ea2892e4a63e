"""The oip section of the demo report."""

from cnnscope.optvis.oip import report_section  # noqa: F401  (moving here)
