#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine: the system tools the
# tests drive for real (SoftHSM2 token, OpenSC's pkcs11-tool, openssl, age, mandoc, promtool,
# poppler's pdftotext/pdftoppm, bash-completion, systemd-analyze) and ekm with its test extras.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(softhsm2 opensc openssl age mandoc prometheus poppler-utils bash-completion systemd)
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

python3 -m pip install -q --disable-pip-version-check -e '.[test]'

# The tests drive these for real; a missing one would turn tests into skips, so fail here.
for tool in softhsm2-util pkcs11-tool openssl age mandoc promtool pdftotext pdftoppm \
            systemd-analyze bash; do
  command -v "$tool" >/dev/null || { echo "install-test-deps: $tool is missing" >&2; exit 1; }
done
[ -e /usr/lib/softhsm/libsofthsm2.so ] || { echo "install-test-deps: SoftHSM2 module missing" >&2; exit 1; }
[ -e /usr/share/bash-completion/bash_completion ] || { echo "install-test-deps: bash-completion missing" >&2; exit 1; }
