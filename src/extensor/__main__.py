"""`python -m extensor` runs the `extensor` command line."""

import sys

from extensor.cli.main import main

sys.exit(main())
