"""``python -m pfflake.simulate OUT_DIR [--product P] [--size-gb G]``."""

from . import main

main()
