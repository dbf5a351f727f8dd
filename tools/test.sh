#!/usr/bin/env bash
# The test command: install everything the tests need, then run them.
#
#   bash tools/test.sh                          # every capability, the slow variants left out (under 5 minutes)
#   bash tools/test.sh -m "slow or not slow"    # everything, as .ci/run runs it
#   bash tools/test.sh tests/runtime -x -n 0    # any pytest arguments are passed on (-n 0: one process)
#
# pytest's options are in pyproject.toml ([tool.pytest.ini_options]): `-m "not slow"` and one process per core,
# at most 4 (pytest-xdist).
#
# It installs, from this checkout:
#   - the package with its test extra, editable (pip install -e ".[test]"): the tests import the code in this
#     tree, so a change is tested as soon as it is saved, with no reinstall (a user's install is `pip install .`;
#     tests/test_install.py checks that such a non-editable install works from the repository root);
#   - the npm packages of the Node binding and of the browser demo, from their committed lockfiles (npm ci);
#   - Debian's chromium and chromium-driver (the browser demo's test), iproute2 (`ss`, the server's backlog test)
#     and Node.js with npm, when missing.
# Set SEQ2SEQ_EDGE_TEST_NO_INSTALL=1 to skip the installs (everything already in place) and only run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"

apt_install() {  # apt_install PACKAGE...: Debian packages, as root or through sudo
    local run=()
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo > /dev/null; then
            echo "tools/test.sh: the tests need $* (Debian packages); run as root or install sudo," \
                 "or install them yourself: apt-get install $*" >&2
            exit 1
        fi
        run=(sudo)
    fi
    if ! command -v apt-get > /dev/null; then
        echo "tools/test.sh: the tests need $*; this is not a Debian-like system (no apt-get): install them" \
             "with your package manager, then run this script again" >&2
        exit 1
    fi
    "${run[@]}" apt-get update -qq
    "${run[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

if [ "${SEQ2SEQ_EDGE_TEST_NO_INSTALL:-0}" != 1 ]; then
    missing=()
    command -v node > /dev/null || missing+=(nodejs)
    command -v npm > /dev/null || missing+=(npm)
    command -v chromium > /dev/null || missing+=(chromium)
    command -v chromedriver > /dev/null || missing+=(chromium-driver)
    command -v ss > /dev/null || missing+=(iproute2)  # the server's backlog test reads the listening socket
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    python -m pip install --quiet -e ".[test]"
    # The Node binding's and the browser demo's npm packages, exactly as their lockfiles pin them.
    (cd bindings/node && npm ci --no-audit --no-fund --loglevel=error)
    (cd bindings/web && npm ci --no-audit --no-fund --loglevel=error)
fi

exec python -m pytest "$@"
