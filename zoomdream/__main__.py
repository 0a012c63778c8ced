"""``python -m zoomdream`` runs the command line."""

import sys

from zoomdream.cli import main

sys.exit(main())
