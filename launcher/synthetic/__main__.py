import sys
from pathlib import Path

from launcher.synthetic import write_all

write_all(Path(sys.argv[1] if len(sys.argv) > 1 else "recipes/data"))
