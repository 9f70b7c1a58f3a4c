"""`python -m dpo ...`: see dpo/cli.py."""

import sys

from .cli import main

sys.exit(main())
