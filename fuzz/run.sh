#!/usr/bin/env bash
# Fuzzes what reads bytes from the network or the operator: the codecs (codec_v2, codec_v1,
# codec_json), the reference loader (reference), the config loader (config_toml), shadow
# traffic's request templates and answer reader (shadow), the privacy detectors (privacy), POST
# /feedback bodies (feedback), rollout bodies, the metrics text vigil parses back and alert
# templates (ops), and version and mirror bodies with the route edits they drive (admin), each for
# a bounded time.
#   fuzz/run.sh [SECONDS_PER_TARGET=60] [TARGET...]
# Needs a nightly toolchain and cargo-fuzz; says how to get them if they are missing.
# A crash stops the run and leaves its input in fuzz/artifacts/<target>/: add it to the
# regression tests in tests/codec.rs.
set -euo pipefail
secs="${1:-60}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(codec_v2 codec_v1 codec_json reference config_toml feedback shadow privacy ops admin)
cd "$(dirname "$0")"

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz/run.sh: needs a nightly toolchain: rustup toolchain install nightly" >&2
    exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs cargo-fuzz: cargo install cargo-fuzz" >&2
    exit 2
fi

for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "seeds/$t"
    echo "== $t: ${secs}s"
    # corpus/$t grows with what the fuzzer finds; seeds/$t is read only.
    cargo +nightly fuzz run "$t" "corpus/$t" "seeds/$t" -- \
        -max_total_time="$secs" -max_len=8192 -timeout=10 -print_final_stats=1 \
        $([ "$t" = config_toml ] || echo -dict=json.dict)
done
