#!/usr/bin/env bash
# filmrec needs Python 3.11+ with venv: say exactly what to install before pip fails late.
#   scripts/check-python.sh [python]   (the Makefile passes $(PYTHON), python3 by default)
set -euo pipefail
python_bin="${1:-python3}"
install="Debian/Ubuntu: sudo apt-get install -y python3 python3-venv (3.11+); macOS: brew install python@3.11"
# A shim (pyenv) may exist and still not run: ask the interpreter itself.
if ! version=$("$python_bin" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])' 2>/dev/null); then
  echo "Python 3.11+ is required and '$python_bin' was not found or does not run: install it ($install) or run make PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "Python $version found ('$python_bin'), but filmrec needs 3.11+: install it ($install) or run make PYTHON=/path/to/python3.11." >&2
  exit 1
fi
if ! "$python_bin" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  echo "Python $version ('$python_bin') cannot create virtualenvs: install its venv module (Debian/Ubuntu: sudo apt-get install -y python3-venv)." >&2
  exit 1
fi
