#!/usr/bin/env bash
# Installs what the gateway benchmarks need, once (each step is skipped when already done):
#   wrk and nginx from Debian; LiteLLM's proxy in its own venv (its dependencies conflict
#   with ours); a bench venv with uvicorn, granian, httpx2 and py-spy (server_choice.py,
#   profile.py); Portkey's gateway from npm. Everything but the Debian packages goes to
#   bench/.cache/ (git-ignored).
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE=bench/.cache
PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
LITELLM_SPEC='litellm[proxy]==1.108.7'
BENCH_SPECS=(aiohttp==3.14.5 uvloop==0.23.0 'uvicorn[standard]==0.54.0' granian==2.8.7 httpx2==2.16.2 py-spy==0.4.3)
PORTKEY_SPEC='@portkey-ai/gateway@1.15.2'
mkdir -p "$CACHE"

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if ((${#missing[@]})); then
    sudo=""
    [ "$(id -u)" = 0 ] || sudo=sudo
    echo "installing ${missing[*]} from Debian"
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# venv_with DIR STAMP SPEC...: a venv holding exactly these specs, rebuilt when they change.
venv_with() {
    local dir=$1 stamp=$2
    shift 2
    if [ -f "$dir/.installed" ] && [ "$(cat "$dir/.installed")" = "$stamp" ]; then
        return
    fi
    echo "installing $* into $dir"
    rm -rf "$dir"
    "$PYTHON" -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$stamp" >"$dir/.installed"
}

venv_with "$CACHE/litellm-venv" "$LITELLM_SPEC" "$LITELLM_SPEC" ||
    echo "LiteLLM could not be installed: the benchmark will record it as skipped" >&2
venv_with "$CACHE/bench-venv" "${BENCH_SPECS[*]}" "${BENCH_SPECS[@]}" ||
    echo "the bench venv could not be installed: server_choice and profile will not run" >&2

if [ ! -f "$CACHE/portkey/.installed" ] || [ "$(cat "$CACHE/portkey/.installed")" != "$PORTKEY_SPEC" ]; then
    echo "installing $PORTKEY_SPEC into $CACHE/portkey"
    mkdir -p "$CACHE/portkey"
    if (cd "$CACHE/portkey" && npm install --silent --no-audit --no-fund --prefix . "$PORTKEY_SPEC"); then
        echo "$PORTKEY_SPEC" >"$CACHE/portkey/.installed"
    else
        echo "Portkey's gateway could not be installed: the benchmark will record it as skipped" >&2
    fi
fi
