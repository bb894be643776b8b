"""`python -m colorstream`: the same command as `colorstream`."""

import sys

from colorstream.cli import main

sys.exit(main())
