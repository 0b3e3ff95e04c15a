"""A process that uses a data directory's shared Redis until it is killed: ``python -m … <data_dir>``.

It prints the record of the server it joined as one JSON line, then sleeps.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from castiel.backends import data_dir_redis

if __name__ == "__main__":
    lease = data_dir_redis.join(Path(sys.argv[1]))
    print(json.dumps(lease.record.as_json()), flush=True)
    time.sleep(3600)
