import sys

from cnnscope.app.cli import main

sys.exit(main())
