"""``python -m exotel_voice``: the same as the ``exotel-voice`` command."""

from __future__ import annotations

import sys

from .cli import main


sys.exit(main())
