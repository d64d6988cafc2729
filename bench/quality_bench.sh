#!/usr/bin/env bash
# bench/quality_bench.sh — speech quality and playout delay of calls over a seeded impaired
# network (issue 3). A benchmark, not a test: prints tables, no thresholds.
#
# For every codec × pair × profile, one call: the caller (namespace A, 10.213.0.1) plays
# the 21 s reference speech (speech48k.wav for Opus, speech8k.wav for PCMU; then 1.5 s of
# silence) and hangs up; the callee (namespace B, 10.213.0.2) also plays speech (so media
# flows both ways) and records what it hears. Between them, `ha-impair` (TUN devices, see
# crates/testkit/src/impair) impairs RTP/RTCP in both directions with the profile and seed;
# SIP passes unimpaired. Each cell shows:
#   PESQ            score.py: what the callee recorded vs the reference (wb Opus, nb PCMU)
#   playout delay   when the callee plays a speech sample - when the caller sent it - the
#                   relay's base delay, on the relay's clock (bench/quality/cell.py says
#                   how; `*` = baresip receiver, measured at its decoder, not comparable)
#   loss            what the relay dropped A->B (same seed: same schedule for every pair)
#
#   sudo bench/quality_bench.sh                 # everything: 48 calls, ~7 min on 2 cores
#   PROFILES="clean loss3" PAIRS=homeagent:homeagent CODECS=opus bench/quality_bench.sh
#   JOBS=2 SEED=7 EXTRA_DELAY_MS=20 BENCH_KEEP=1 HOMEAGENT_BIN=... HA_IMPAIR_BIN=... ...
#   HOMEAGENT_LOG=homeagent_media=debug BENCH_KEEP=1 ...   # our UAs' logs in cellN/*.err
#
# Needs root (network namespaces, /dev/net/tun), iproute2, baresip, sox, python3 + pesq.
# Traffic stays inside the namespaces it creates (deleted at exit); calls run JOBS at a
# time, each in its own pair of namespaces; every wait is bounded; only the processes
# started here are stopped (by PID).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${HOMEAGENT_SHARED:-$REPO/../shared}"
TARGET="${CARGO_TARGET_DIR:-$REPO/target}"
HOMEAGENT_BIN="${HOMEAGENT_BIN:-$TARGET/release/homeagent}"
HA_IMPAIR_BIN="${HA_IMPAIR_BIN:-$TARGET/release/ha-impair}"
[ -x "$HA_IMPAIR_BIN" ] || HA_IMPAIR_BIN="$TARGET/debug/ha-impair"
SCORE="$SHARED/scripts/score.py"
PROFILES="${PROFILES:-clean loss3 loss10 burst10 jitter30 loss5_jitter40}"
PAIRS="${PAIRS:-homeagent:homeagent homeagent:baresip baresip:homeagent baresip:baresip}"
CODECS="${CODECS:-opus pcmu}"
JOBS="${JOBS:-3}"
SEED="${SEED:-7}"
EXTRA_DELAY_MS="${EXTRA_DELAY_MS:-0}"
ADDR_A=10.213.0.1
ADDR_B=10.213.0.2
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ha-quality.XXXXXX")"
STARTED_AT="$SECONDS"
RESULTS="$TMP/results.jsonl"
: >"$RESULTS"

die() { echo "quality_bench: $*" >&2; exit 1; }

cleanup() {
  local pid ns
  # Cells still running (interrupted run): their process groups.
  for pid in $(jobs -p); do kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.5
  for pid in $(jobs -p); do kill -KILL -- "-$pid" 2>/dev/null || true; done
  for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep "^haqb$$c" || true); do
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -n "${BENCH_KEEP:-}" ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, TUN)"
[ -c /dev/net/tun ] || die "no /dev/net/tun"
command -v ip >/dev/null || die "iproute2 not installed"
command -v sox >/dev/null || die "sox not installed"
[ -x "$HA_IMPAIR_BIN" ] || die "no ha-impair (cargo build --release -p homeagent-testkit)"
case " $PAIRS " in
  *homeagent*) [ -x "$HOMEAGENT_BIN" ] || die "no $HOMEAGENT_BIN (cargo build --release -p homeagent-cli)" ;;
esac
case " $PAIRS " in *baresip*) command -v baresip >/dev/null || die "baresip not installed" ;; esac
python3 -c "import pesq, numpy, scipy, soundfile" 2>/dev/null || die "python3 pesq numpy scipy soundfile needed"

# wait_log FILE REGEX SECS: bounded wait for a line.
wait_log() {
  local end=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || { echo "no /$2/ in $1 after $3 s" >&2; return 1; }
    sleep 0.05
  done
}
# wait_pid PID SECS: bounded wait for a process started by this cell; TERM after.
wait_pid() {
  local end=$((SECONDS + $2))
  while kill -0 "$1" 2>/dev/null; do
    if [ "$SECONDS" -ge "$end" ]; then kill -TERM "$1" 2>/dev/null || true; sleep 0.5; kill -KILL "$1" 2>/dev/null || true; break; fi
    sleep 0.1
  done
  wait "$1" 2>/dev/null || true
}

# Sources per codec: the reference (scored against), the caller's (speech + 1.5 s: it hangs
# up when it ends), the callee's (speech + 60 s: the caller hangs up first).
prepare_audio() {
  local codec rate
  for codec in $CODECS; do
    case "$codec" in
      opus) rate=48000 ;;
      pcmu) rate=8000 ;;
      *) die "unknown codec $codec" ;;
    esac
    cp "$SHARED/audio/speech${rate%000}k.wav" "$TMP/ref-$codec.wav"
    sox "$TMP/ref-$codec.wav" "$TMP/caller-$codec.wav" pad 0 1.5
    sox "$TMP/ref-$codec.wav" "$TMP/callee-$codec.wav" pad 0 60
  done
}

# ---------------------------------------------------------------- one UA, in a namespace
# homeagent_callee DIR NS CODEC: `listen --calls 1`, records heard.wav; sets UA_PID.
homeagent_callee() {
  ip netns exec "$2" "$HOMEAGENT_BIN" listen --calls 1 --bind "$ADDR_B:5060" \
    --rtp-ports 20000-20009 --codecs "$3" --audio-in "$TMP/callee-$3.wav" \
    --audio-out "$1/heard.wav" --hangup-after 60 ${HOMEAGENT_LOG:+--log-level "$HOMEAGENT_LOG"} \
    --json </dev/null >"$1/callee.jsonl" 2>"$1/callee.err" &
  UA_PID=$!
  wait_log "$1/callee.jsonl" '"event":"ready"' 10
}
# homeagent_caller DIR NS CODEC: calls B, returns when the call is over.
homeagent_caller() {
  ip netns exec "$2" "$HOMEAGENT_BIN" call "sip:bob@$ADDR_B:5060" --bind "$ADDR_A:5060" \
    --rtp-ports 20000-20009 --codecs "$3" --audio-in "$TMP/caller-$3.wav" --audio-out null \
    --timeout 15 ${HOMEAGENT_LOG:+--log-level "$HOMEAGENT_LOG"} \
    --json </dev/null >"$1/caller.jsonl" 2>"$1/caller.err" &
  local pid=$!
  wait_pid "$pid" 60
}
# baresip_config DIR ADDR CODEC SOURCE: a config dir for a baresip in a namespace.
baresip_config() {
  local d="$1" cname
  case "$3" in opus) cname=opus/48000/2 ;; pcmu) cname=PCMU/8000/1 ;; esac
  mkdir -p "$d/rec"
  cat >"$d/config" <<CFG
poll_method epoll
sip_listen $2:5060
net_interface $2
rtp_ports 20000-20009
audio_player aubridge,bench
audio_alert aubridge,bench
audio_source aufile,$4
ausrc_channels 1
auplay_channels 1
module_path /usr/lib/baresip/modules
module g711.so
module opus.so
module aubridge.so
module aufile.so
module sndfile.so
snd_path $d/rec
module cons.so
cons_listen 127.0.0.1:5062
module_tmp account.so
module_app menu.so
CFG
  echo "<sip:bob@$2:5060>;regint=0;answermode=auto;audio_codecs=$cname" >"$d/accounts"
  : >"$d/contacts"
}
baresip_cmd() { ip netns exec "$1" bash -c "printf '%s\n' '$2' >/dev/udp/127.0.0.1/5062"; }
# baresip_callee DIR NS CODEC: auto-answers, records; sets UA_PID.
baresip_callee() {
  baresip_config "$1/bs" "$ADDR_B" "$3" "$TMP/callee-$3.wav"
  ip netns exec "$2" stdbuf -oL -eL baresip -f "$1/bs" -t 90 </dev/null >"$1/callee.log" 2>&1 &
  UA_PID=$!
  wait_log "$1/callee.log" "baresip is ready" 10
}
# baresip_caller DIR NS CODEC: dials B; its file ending hangs up; returns when it quit.
baresip_caller() {
  baresip_config "$1/bsa" "$ADDR_A" "$3" "$TMP/caller-$3.wav"
  ip netns exec "$2" stdbuf -oL -eL baresip -f "$1/bsa" -t 90 </dev/null >"$1/caller.log" 2>&1 &
  local pid=$!
  wait_log "$1/caller.log" "baresip is ready" 10
  baresip_cmd "$2" "/dial sip:bob@$ADDR_B:5060"
  wait_log "$1/caller.log" "session closed|terminated \(duration" 60 || true
  baresip_cmd "$2" "/quit"
  wait_pid "$pid" 5
}
# newest FILE matching a glob, or nothing.
newest() { ls -t $1 2>/dev/null | head -n 1; }

# ---------------------------------------------------------------- one cell
# run_cell N CODEC PAIR PROFILE: writes one JSON line to $TMP/cellN/row.json (cells run in
# parallel: each writes its own file, gathered into $RESULTS at the end).
run_cell() {
  set +e # a failed step is reported in the cell, the other cells go on
  local n="$1" codec="$2" pair="$3" profile="$4"
  local caller="${pair%%:*}" callee="${pair##*:}" d="$TMP/cell$n"
  local ns_a="haqb$$c${n}a" ns_b="haqb$$c${n}b" mode=wb heard sent="" fd relay_pid
  [ "$codec" = pcmu ] && mode=nb
  mkdir -p "$d"
  ip netns add "$ns_a"
  ip netns add "$ns_b"
  mkfifo "$d/relay.stdin"
  exec {fd}<>"$d/relay.stdin"
  "$HA_IMPAIR_BIN" --ns-a "$ns_a" --ns-b "$ns_b" --profile "$profile" --seed "$SEED" \
    --delay-ms "$EXTRA_DELAY_MS" --duration 120 <&"$fd" >"$d/relay.json" 2>"$d/relay.err" &
  relay_pid=$!
  if wait_log "$d/relay.json" '"event":"ready"' 10; then
    "${callee}_callee" "$d" "$ns_b" "$codec"
    local callee_pid="$UA_PID"
    "${caller}_caller" "$d" "$ns_a" "$codec"
    if [ "$callee" = baresip ]; then
      wait_log "$d/callee.log" "session closed|terminated \(duration" 10 || true
      baresip_cmd "$ns_b" "/quit"
    fi
    wait_pid "$callee_pid" 15
  fi
  echo stop >&"$fd"
  wait_pid "$relay_pid" 10
  exec {fd}>&-
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  if [ "$callee" = homeagent ]; then heard="$d/heard.wav"; else heard="$(newest "$d/bs/rec/*-dec.wav")"; fi
  [ "$caller" = baresip ] && sent="$(newest "$d/bsa/rec/*-enc.wav")"
  python3 "$HERE/quality/cell.py" --score "$SCORE" --ref "$TMP/ref-$codec.wav" --mode "$mode" \
    --relay "$d/relay.json" --sender "$caller" --receiver "$callee" --heard "${heard:-/nonexistent}" \
    ${sent:+--sent "$sent"} >"$d/result.json" 2>"$d/result.err" || true
  python3 - "$d/result.json" "$codec" "$pair" "$profile" >"$d/row.json" <<'PY'
import json, sys
path, codec, pair, profile = sys.argv[1:]
try:
    r = json.loads(open(path).read())
except Exception as e:
    r = {"pesq": None, "error": f"no result: {e}"}
r.update(codec=codec, pair=pair, profile=profile)
print(json.dumps(r))
PY
  echo "  done: $codec $pair $profile: $(cat "$d/result.json" 2>/dev/null)" >&2
}

prepare_audio
echo "quality bench: codecs [$CODECS] pairs [$PAIRS] profiles [$PROFILES], seed $SEED," \
  "extra delay ${EXTRA_DELAY_MS} ms, $JOBS calls at a time; load $(cut -d' ' -f1-3 /proc/loadavg)"
n=0
for codec in $CODECS; do
  for profile in $PROFILES; do
    for pair in $PAIRS; do
      n=$((n + 1))
      while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do wait -n || true; done
      # Own process group: an interrupted run can stop the cell with everything it started.
      set -m
      run_cell "$n" "$codec" "$pair" "$profile" &
      set +m
    done
  done
done
wait
cat "$TMP"/cell*/row.json >"$RESULTS" 2>/dev/null || true
python3 "$HERE/quality/table.py" "$RESULTS" "$CODECS" "$PAIRS" $PROFILES
echo
echo "seed $SEED; relay base delay subtracted (jitter30: 30 ms, loss5_jitter40: 40 ms, + $EXTRA_DELAY_MS ms)."
echo "Playout delay includes one packet time and the receiver's 0-20 ms frame phase."
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); $n calls took $((SECONDS - STARTED_AT)) s"
