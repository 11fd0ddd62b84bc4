"""Development tooling: the native stack, the broker launcher, service starters, lock files.

Not the product: it is not in the filmrec wheel. The Makefile, the tests and CI run
it from the repository root (`python -m devstack.<module>`).
"""

from pathlib import Path

# The checkout this tooling runs from: it starts the platform's own files (api/,
# spark/, airflow/, prometheus/), so unlike the product it is tied to the tree.
REPO = Path(__file__).resolve().parents[1]
