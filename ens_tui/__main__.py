import sys

from ens_tui.cli import main

sys.exit(main())
