import sys

from judgeforge.cli import main

sys.exit(main())
