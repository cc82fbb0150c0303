"""``python -m aqi`` — the same command line as ``aqi`` (and ``torchrun -m aqi capture ...``)."""

import sys

from aqi.cli import main

if __name__ == "__main__":
    sys.exit(main())
