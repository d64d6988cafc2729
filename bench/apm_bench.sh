#!/usr/bin/env bash
# bench/apm_bench.sh — figures of the call audio processing (echo cancellation, noise
# suppression, gain control: homeagent_audio::AudioProcessor over sonora), on simulated
# signals built from the shared speech files (see crates/audio/examples/apm_bench.rs):
#   erle_db            far end played, heard by the mic 100 ms later, 10 dB down, through a
#                      40 ms room response over a -80 dBFS floor, near end silent; capture
#                      energy / output energy after 2 s of convergence (goal >= 25 dB)
#                      stages=aec: echo cancellation only; stages=all: AEC + NS + AGC
#   ns_pause_noise_db  noise level in the speech pauses before -> after noise suppression
#   pesq_ns            PESQ-WB of speech + noise at 10 dB SNR before -> after noise
#                      suppression, and the gain (goal >= +0.3 on stationary noise);
#                      noise=pink (seeded, stationary) and noise=babble (4 shifted talkers)
#   pesq_double_talk  PESQ-WB of the near end while the far end's echo is heard (10 dB below
#                      the far end, as in erle_db): mic -> after echo cancellation;
#                      double_talk_headset: no echo at all (a headset), both ends talking
#                      at once all along: near end -> after echo cancellation
#   cpu_us_per_10ms    process_render + process_capture time per 10 ms block (one core)
#   device_erle_db     only with a PulseAudio of virtual devices (shared/scripts/virtual-audio.sh,
#                      XDG_RUNTIME_DIR exported): the speech is played to device:vspeaker,
#                      looped back into device:vmic (module-loopback, 60 ms), captured and
#                      echo-cancelled in 20 ms ticks for 20 s; ERLE after 5 s
# A benchmark, not a test: no thresholds, just figures.
#
#   bench/apm_bench.sh                 # builds the example (release) and prints the figures
#   BENCH_KEEP=1 bench/apm_bench.sh    # keeps the WAV files (path printed)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${HOMEAGENT_SHARED:-$REPO/../shared}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"

cargo build --quiet --release -p homeagent-audio --example apm_bench --manifest-path "$REPO/Cargo.toml"
OUT="$(mktemp -d /tmp/apm-bench.XXXXXX)"
if [ -z "${BENCH_KEEP:-}" ]; then
    trap 'rm -rf "$OUT"' EXIT
else
    echo "# files kept in $OUT"
fi

"$TARGET/release/examples/apm_bench" "$SHARED/audio" "$OUT" > "$OUT/figures.txt"
grep -v '^pesq_pair ' "$OUT/figures.txt"

# PESQ of each pair (before / after processing) against its reference.
grep '^pesq_pair ' "$OUT/figures.txt" | while read -r _ rate noise ref noisy denoised; do
    before="$(python3 "$SHARED/scripts/score.py" "$ref" "$noisy" wb)"
    after="$(python3 "$SHARED/scripts/score.py" "$ref" "$denoised" wb)"
    python3 - "$rate" "$noise" "$before" "$after" <<'PY'
import json, sys
rate, noise, before, after = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
if "pesq" not in before or "pesq" not in after:
    print(f"pesq {rate} {noise} error {before.get('error')} / {after.get('error')}")
else:
    b, a = before["pesq"], after["pesq"]
    name = "pesq_double_talk" if noise.startswith("double_talk") else "pesq_ns"
    print(f"{name} {rate} {noise} {b:.2f} -> {a:.2f} ({a - b:+.2f})")
PY
done

# Echo through the real device path, when the virtual devices are there.
if pactl info >/dev/null 2>&1 && pactl list short sinks | grep -q vmic_src; then
    module="$(pactl load-module module-loopback source=vspeaker.monitor sink=vmic_src latency_msec=60)"
    status=0
    "$TARGET/release/examples/apm_bench" device "$SHARED/audio/speech16k.wav" device:vspeaker device:vmic || status=$?
    pactl unload-module "$module"
    exit "$status"
else
    echo "device_erle_db skipped (no PulseAudio with the virtual devices)"
fi
