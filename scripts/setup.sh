#!/usr/bin/env bash
# Create .venv and install the project's requirements; `--dev` adds the test tools and Chromium
# (Debian's package, for the end-to-end browser test). Idempotent: a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
REQ=requirements.txt
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt
.venv/bin/python -m pip install -q --disable-pip-version-check -r "$REQ" 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import torch, timm, streamlit, onnxruntime" # fail loudly if the install did not work
if [ "${1:-}" = "--dev" ] && [ -f .ci/install_browser.sh ]; then
  bash .ci/install_browser.sh
fi
