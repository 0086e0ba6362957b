"""`python -m attempt.cli`: the same as the `attempt` command."""

import sys

from attempt.cli import main

sys.exit(main())
