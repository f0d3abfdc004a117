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
if [ ${#apt_needed[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${apt_needed[@]}" >/dev/null
  else
    echo "setup: please install: ${apt_needed[*]} (Debian packages)" >&2
  fi
fi

python3 -m pip install -q --disable-pip-version-check -e ".[test]"

# The Jupyter server extension (the jobs sidebar's REST API) is enabled by a config
# file that a regular install places as data files; an editable install (this one)
# places none, so it is copied where `jupyter server` reads config (<prefix>/etc/jupyter).
prefix=$(python3 -c 'import sys; print(sys.prefix)')
install -D -m 0644 jupyter-config/jupyter_server_config.d/twister_nb.json \
  "$prefix/etc/jupyter/jupyter_server_config.d/twister_nb.json"
