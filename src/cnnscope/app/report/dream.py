"""The dream section of the demo report."""

from cnnscope.optvis.dream import report_section  # noqa: F401  (moving here)
