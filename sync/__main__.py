"""`python -m sync` runs the ims-sync command line."""

import sys

from sync.cli.app import main

sys.exit(main())
