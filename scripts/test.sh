#!/usr/bin/env bash
# The whole test suite, from a fresh machine: setup (Debian packages, the cached regtest bitcoind),
# the gates (formatting, clippy with warnings denied, docs with warnings denied), then every unit
# and end-to-end test of the workspace, the payments and FX suites again on PostgreSQL, then
# schemathesis against a live gateway (the published
# OpenAPI contract checked by an outside tool), then a short run of every fuzz target (nightly
# and cargo-fuzz; see fuzz/README.md). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sendero/target}"
BITCOIND_EXE="$(scripts/setup.sh)"
export BITCOIND_EXE
echo "test.sh: bitcoind at $BITCOIND_EXE; build artefacts in $CARGO_TARGET_DIR" >&2
rustup component list --installed 2>/dev/null | grep -q '^rustfmt' || rustup component add rustfmt clippy >&2 || true
echo "test.sh: cargo fmt --check" >&2
cargo fmt --all -- --check
echo "test.sh: cargo clippy (warnings denied)" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "test.sh: cargo doc (warnings denied)" >&2
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked --quiet
cargo test --workspace --locked
# The payments and FX suites again, every test gateway's books on a real PostgreSQL (the harness
# starts one per test process; tests/common/postgres.rs). The suites that check SQLite's own file
# (secrets' file modes, the full disk, backup bundles, a SQLite write lock) run on SQLite only.
echo "test.sh: the payments and FX suites on PostgreSQL" >&2
pg_suites=(e2e_payments e2e_payments_route e2e_crash e2e_fx e2e_fx_sources e2e_api_contract e2e_batch
  e2e_batch_consolidate e2e_bump e2e_consolidate e2e_fee_policy e2e_fee_history e2e_payout_limits e2e_webhooks e2e_invoices
  e2e_invoice_refunds e2e_invoices_detect e2e_recon e2e_ledger_rails e2e_events e2e_treasury_reserve
  e2e_authz e2e_admin_errors e2e_bolt12 e2e_ln_payout_events)
SENDERO_TEST_STORE=postgres cargo test --locked -p sendero $(printf -- '--test %s ' "${pg_suites[@]}")
echo "test.sh: schemathesis against a live senderod --dev" >&2
scripts/schemathesis.sh
echo "test.sh: fuzz smoke (every cargo-fuzz target, a few seconds each)" >&2
scripts/fuzz-smoke.sh
