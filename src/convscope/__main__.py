"""``python -m convscope``: the same command line as ``convscope``."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
