"""The desktop bundle's entry point: the same command line as the ``medviewer`` script."""

import sys

from medviewer.cli import main

if __name__ == "__main__":
    sys.exit(main())
