"""`python -m proofpilot.cli`: the same as the `proofpilot` command."""

import sys

from proofpilot.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
