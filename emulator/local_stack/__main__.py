"""`python -m local_stack` (`make run`): see local_stack.run."""

import sys

from local_stack.run import main

sys.exit(main())
