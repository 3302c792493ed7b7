"""``python -m reprodl.distributed worker ...``: one worker (:mod:`reprodl.distributed.worker`)."""

import sys

from reprodl.distributed.worker import main

sys.exit(main())
