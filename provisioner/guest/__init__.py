"""Scripts `lab` sends to a node over SSH and runs with the guest's own python3 (stdlib only)."""

from pathlib import Path

MEASURE_CONTAINERS = Path(__file__).resolve().parent / "measure_containers.py"
MEASURE_API_FLOOR = Path(__file__).resolve().parent / "measure_api_floor.py"
