"""``python -m medviewer``."""

import sys

from medviewer.cli import main

sys.exit(main())
