import sys
from pathlib import Path

# The benchmark helpers (peers.py, mlp_step_cases.py) are plain modules beside this file.
sys.path.insert(0, str(Path(__file__).parent))
