"""`python -m recsys_scaling.cli`: the same as the `recsys-scaling` command."""
import sys

from .main import main

sys.exit(main())
