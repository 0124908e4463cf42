# Sourced by scripts/test.sh and scripts/install-test-deps.sh: chooses the Python the tests use
# and puts its scripts directory (ekm, bao, pytest) first on PATH.
#
# - inside a virtual environment (or with EKM_PYTHON set): that Python;
# - a python3 that pip may install into (pyenv, a self-built Python, a container's): python3;
# - a distribution's python3 that refuses pip installs (PEP 668 "externally managed", Debian
#   and Ubuntu): a private ./.venv made once, so the README's test command works there too.
# PATH is set explicitly because a pyenv shim for a freshly installed console script (`bao`)
# only appears after `pyenv rehash`.

if [ -n "${EKM_PYTHON:-}" ]; then
  :
elif [ -n "${VIRTUAL_ENV:-}" ]; then
  EKM_PYTHON="$VIRTUAL_ENV/bin/python"
elif python3 -c 'import os, sys, sysconfig
sys.exit(0 if os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")) else 1)'; then
  [ -x .venv/bin/python ] || python3 -m venv .venv
  EKM_PYTHON="$PWD/.venv/bin/python"
else
  EKM_PYTHON="$(command -v python3)"
fi
EKM_PYTHON_SCRIPTS="$("$EKM_PYTHON" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')"
PATH="$EKM_PYTHON_SCRIPTS:$PATH"
export EKM_PYTHON PATH
