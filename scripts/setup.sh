#!/usr/bin/env bash
# Create .venv and install the project's requirements: the app's by default, `--train` adds what
# training and the benchmarks need, `--dev` adds that and the test tools and Chromium (Debian's
# package, for the end-to-end browser test). Idempotent: a second run is quick.
# PYTHON picks the interpreter (python3.11 or python3.12, the two versions tested), VENV the folder:
#   PYTHON=python3.12 VENV=/tmp/venv312 bash scripts/setup.sh --dev
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
VENV=${VENV:-.venv}
say() { echo "[setup $(date +%H:%M:%S)] $*"; }
find_python() {
  # "$1" itself when it runs, else (pyenv) the newest installed version of that name: a pyenv shim answers only for
  # the versions made active, so python3.12 fails where 3.12 is installed but not global (pyenv's own path works)
  if "$1" -c 'import sys' >/dev/null 2>&1; then echo "$1"; return 0; fi
  command -v pyenv >/dev/null 2>&1 || return 1
  local want=${1#python} v bin
  for v in $(pyenv versions --bare 2>/dev/null | grep -E "^${want//./\\.}(\\.|$)" | sort -t. -k1,1n -k2,2n -k3,3n -r); do
    bin="$(pyenv root)/versions/$v/bin/$1"
    if [ -x "$bin" ] && "$bin" -c 'import sys' >/dev/null 2>&1; then echo "$bin"; return 0; fi
  done
  return 1
}
if FOUND=$(find_python "$PY"); then
  PY=$FOUND
else
  # only the default may fall back: an interpreter asked for by name must be the one used
  [ -z "${PYTHON:-}" ] || { echo "PYTHON=$PYTHON is not a working interpreter (nor an installed pyenv version); set PYTHON to its full path, e.g. PYTHON=\$(pyenv root)/versions/3.12.1/bin/python3.12" >&2; exit 1; }
  PY=python3
fi
[ -x "$VENV/bin/python" ] || { say "creating $VENV with $("$PY" --version 2>&1)"; "$PY" -m venv "$VENV"; }
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
REQ=requirements.txt                                  # the app and the CLI
[ "${1:-}" = "--train" ] && REQ=requirements-train.txt  # + training, INT8 export, benchmarks
[ "${1:-}" = "--dev" ] && REQ=requirements-dev.txt      # + tests, linters (what CI installs)
say "installing $REQ into $VENV (torch, onnxruntime, streamlit, ...: a few minutes on a fresh machine)"
log=$(mktemp)
if ! "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$REQ" >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
rm -f "$log"
say "checking that the packages import"
"$VENV/bin/python" -c "import sys, torch, timm, streamlit, onnxruntime; print(\"python\", sys.version.split()[0], \"torch\", torch.__version__)" # fail loudly if the install did not work
if [ "${1:-}" = "--dev" ] && [ -f .ci/install_browser.sh ]; then
  # the browser comes from apt, outside pip: if the mirror is unreachable, say so loudly and let the
  # rest of the suite run (the e2e test then reports itself skipped, naming what is missing)
  say "installing Debian's Chromium for the browser tests"
  bash .ci/install_browser.sh || echo "WARNING: Chromium could not be installed; tests/e2e will be skipped" >&2
fi
say "done"
