"""`python -m sync` runs the ims-sync command line."""

import sys

from sync.cli import main

sys.exit(main())
