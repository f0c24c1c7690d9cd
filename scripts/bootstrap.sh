#!/usr/bin/env bash
# Prepare a fresh Debian/Ubuntu machine that has only Python: install Mosquitto (and its
# command-line clients), Chromium, PostgreSQL and the venv module where missing (apt-get, via sudo when not root), then obslink with its
# collector, BUFR, PostgreSQL and test extras into .venv. Safe to run again; it only adds what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
python3 -c "import ensurepip, venv" >/dev/null 2>&1 || missing+=(python3-venv)
# mosquitto_pub/sub: the raw baseline of bench/product_transfer.py and its smoke test
command -v mosquitto_pub >/dev/null 2>&1 || missing+=(mosquitto-clients)
# the tests load the collector's web pages in a real headless browser
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# the catalog tests run on PostgreSQL too, each session on a server of its own (initdb);
# Debian keeps its programs in /usr/lib/postgresql/<version>/bin, off PATH
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "bootstrap: installing ${missing[*]} with apt-get" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[server,metrics,bufr,postgresql,test]"
# PyCINRAD (test-only: it reads back our CINRAD radar products) imports numpy in its
# setup.py without declaring it, so it is built against the numpy already installed
if ! .venv/bin/python -c "import cinrad" >/dev/null 2>&1; then
  .venv/bin/python -m pip install -q --disable-pip-version-check numpy cython setuptools wheel
  .venv/bin/python -m pip install -q --disable-pip-version-check --no-build-isolation \
    "cinrad>=1.9,<2"
fi
echo "bootstrap: obslink $(.venv/bin/obslink --version | cut -d' ' -f2) ready in .venv" >&2
