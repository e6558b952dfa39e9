"""`python -m stacmr` = the `stacmr` console script."""

import sys

from stacmr.cli import main

sys.exit(main())
