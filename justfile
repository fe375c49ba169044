# Hindsight's recipes. On a machine with only rustup, run them through ./justw.

set shell := ["bash", "-euo", "pipefail", "-c"]

target_dir := env_var_or_default("CARGO_TARGET_DIR", justfile_directory() / "target")
dist := justfile_directory() / "client-wasm" / "dist"

# Build everything and run Hindsight at http://127.0.0.1:3000 (extra flags go to the server).
run *FLAGS: client
    cargo run --release -p hindsight-server -- {{FLAGS}}

# Run every test: unit, integration, protocol compatibility and browser tests.
test: setup client
    cargo check -p hindsight-shared --target wasm32-unknown-unknown
    cargo test --workspace --exclude hindsight-client

# Install the toolchain pieces: wasm32 target, wasm-bindgen CLI, Chromium and ChromeDriver, axe-core,
# and the PostgreSQL, NATS and HAProxy servers the storage and cluster tests start.
setup:
    scripts/setup-wasm.sh
    scripts/setup-browser.sh
    scripts/setup-axe.sh
    scripts/setup-postgres.sh
    scripts/setup-nats.sh
    scripts/setup-haproxy.sh

# Build the browser client into client-wasm/dist (the server embeds it at compile time).
client:
    scripts/setup-wasm.sh
    cargo rustc --profile wasm-release -p hindsight-client --lib --target wasm32-unknown-unknown --crate-type cdylib
    mkdir -p {{dist}}
    wasm-bindgen --target web --no-typescript --remove-name-section --remove-producers-section \
        --out-dir {{dist}} {{target_dir}}/wasm32-unknown-unknown/wasm-release/hindsight_client.wasm
    cp client-wasm/index.html client-wasm/style.css client-wasm/sw.js {{dist}}/

# Measure Hindsight beside the reference automerge-repo sync server (node); `just bench --quick`
# for a one-minute smoke run. Each server runs on CPU 0, the load generator on CPU 1.
bench *FLAGS: client
    cd bench/reference && npm install --no-audit --no-fund --silent
    cargo build --release -p hindsight-server -p hindsight-bench
    taskset -c 1 {{target_dir}}/release/hindsight-bench --hindsight-bin {{target_dir}}/release/hindsight \
        --reference-dir bench/reference --server-cpu 0 --out bench/results.md {{FLAGS}}

# A first visit: the client's bytes as the server sends them (raw, gzip, brotli), and the time to
# a rendered board in headless Chromium from a cold cache, brotli beside gzip only, on loopback and
# on an emulated 10 Mbit/s, 40 ms link (median and p90 of RUNS loads each; 0 for the bytes only).
bench-page RUNS="9": client
    cargo build --release -p hindsight-tests --bin hindsight-page-load
    {{target_dir}}/release/hindsight-page-load --runs {{RUNS}}

# The page of a team with RETROS finished retros of ACTIONS action items each: the time and bytes
# to open its ledger, the time to a rendered page in Chromium, and the ledger's size in storage.
bench-team RETROS="200" ACTIONS="10": client
    cargo build --release -p hindsight-tests --bin hindsight-team-load
    {{target_dir}}/release/hindsight-team-load --retros {{RETROS}} --actions {{ACTIONS}}

# A postmortem board with EVENTS timeline events and FACTORS factors: its cold load, and the time
# to the lane and the graph drawn in Chromium.
bench-postmortem EVENTS="2000" FACTORS="200": client
    cargo build --release -p hindsight-tests --bin hindsight-postmortem-load
    {{target_dir}}/release/hindsight-postmortem-load --events {{EVENTS}} --factors {{FACTORS}}

# Cluster mode on real Postgres, NATS and node processes: a board change's latency on 1 node and
# through 3 (CHANGES changes), the frames forwarded per second, and the failover time after a
# kill -9 of the owner with a lease of LEASE_MS.
bench-cluster CHANGES="200" LEASE_MS="2000":
    cargo build --release -p hindsight-tests --bin hindsight-cluster-load --bin hindsight-under-test
    {{target_dir}}/release/hindsight-cluster-load --changes {{CHANGES}} --lease-ms {{LEASE_MS}}

# A long fuzz pass: CASES mutated frames through the wire decoder, CASES/50 random sessions of
# changes through the change validator. The test command runs a short pass of both.
fuzz CASES="200000":
    HINDSIGHT_FUZZ_CASES={{CASES}} cargo test -p hindsight-tests --test it fuzz -- --nocapture
    HINDSIGHT_FUZZ_CASES=$(( {{CASES}} / 50 )) cargo test -p hindsight-server fuzzed -- --nocapture

# Print the size of the client bundle, raw and gzipped (`just bench-page 0` prints the bytes the
# server sends: raw, gzip and brotli).
size: client
    @for f in {{dist}}/*.wasm {{dist}}/*.js; do printf '%-40s %8d raw %8d gzip\n' "$(basename $f)" "$(wc -c < $f)" "$(gzip -9c $f | wc -c)"; done

# Check formatting and lints.
lint:
    cargo fmt --all -- --check
    cargo clippy --workspace --exclude hindsight-client --all-targets -- -D warnings
    cargo clippy -p hindsight-client --target wasm32-unknown-unknown -- -D warnings
