#!/usr/bin/env bash
# The browser tests use Debian's Chromium (never a browser downloaded by Playwright).
set -euo pipefail
if command -v chromium >/dev/null; then exit 0; fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "ensure-chromium: installing Debian's chromium"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
else
  echo "ensure-chromium: install Chromium first (as root: apt-get install -y chromium)." >&2
  exit 1
fi
