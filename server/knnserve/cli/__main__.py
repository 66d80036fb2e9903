"""``python -m knnserve.cli``: the same as the ``knnserve`` console script."""

import sys

from knnserve.cli import main

sys.exit(main())
