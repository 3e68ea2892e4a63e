"""Limits on what a user may ask for in text and numbers, checked before anything is expanded or
allocated, and stated in the help texts. Standard library only: the commands' option help
imports it without loading torch."""

MAX_TEXT = 10_000  # characters of one map list, layer mix, node, index list, layout or grid text
MAX_IMAGE_SIZE = 512  # pixels per side of an OIP image (`oip --size`, a start picture)
MAX_STARTS = 64  # `oip --restarts` / `--starts`: starts per target
MAX_PRECURSOR = 1024  # `oip --precursor`: noise starts screened per target
MAX_COLUMNS = 256  # tiles per row of a picture
