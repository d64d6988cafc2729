#!/usr/bin/env bash
# bench/call_bench.sh — resource figures for loopback calls between two UAs, per call leg:
#   cpu_call_s    CPU seconds (utime+stime, /proc/PID/stat) used while the call was up,
#                 from both legs reporting "established" to the hang-up, CALL_SECONDS long
#   cpu_total_s   CPU seconds from process start to the hang-up (start-up + set-up + call)
#   peak_rss_MiB  VmHWM (/proc/PID/status) just before the hang-up
#   invite_200_ms first INVITE -> first 200 OK (CSeq INVITE), on the wire: dumpcap on lo,
#                 capture filter on the two SIP ports only. One figure per call (both rows).
# A benchmark, not a test: no thresholds, just figures.
#
#   bench/call_bench.sh                          # every pair in PAIRS, Opus and PCMU, 30 s
#   CALL_SECONDS=10 CODECS=pcmu PAIRS=homeagent:baresip bench/call_bench.sh
#   HOMEAGENT_BIN=/path/to/homeagent BENCH_PORT_BASE=27000 BENCH_KEEP=1 ...
#   HOMEAGENT_ARGS="--srtp mandatory" PAIRS=homeagent:homeagent bench/call_bench.sh  # SRTP cost
#
# Both UAs play the same WAV (the codec's rate: speech twice, then silence) and record
# nothing: baresip aufile -> aubridge (discarded), homeagent FILE.wav -> null.
# Both hang up on a command at the same moment (baresip console /hangup, homeagent stdin
# {"command":"hangup"}); homeagent also gets --hangup-after as a safety bound.
#
# Structure: a leg type T provides T_start NAME CODEC PORT, T_dial NAME URI,
# T_wait_established NAME SECS, T_hangup NAME, T_stop NAME and T_uri NAME.
# Loopback only, every port checked free, every wait bounded, only the processes started
# here are stopped (by PID).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
SHARED="${HOMEAGENT_SHARED:-$REPO/../shared}"
HOMEAGENT_BIN="${HOMEAGENT_BIN:-$REPO/target/release/homeagent}"
CALL_SECONDS="${CALL_SECONDS:-30}"
CODECS="${CODECS:-opus pcmu}"
# caller_type:callee_type ...
PAIRS="${PAIRS:-baresip:baresip homeagent:baresip baresip:homeagent homeagent:homeagent}"
PORT_BASE="${BENCH_PORT_BASE:-27000}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ha-bench.XXXXXX")"
CLK_TCK="$(getconf CLK_TCK)"
declare -A PID PORT LOG ARGS FD
NEXT_PORT="$PORT_BASE"
STARTED_AT="$SECONDS"

cleanup() {
  local name
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
  sleep 0.5
  for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}" 2>/dev/null || true; done
  if [ -n "${BENCH_KEEP:-}" ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "call_bench: $*" >&2; exit 1; }
# wait_log FILE REGEX SECS: bounded wait for a line.
wait_log() {
  local end=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || { tail -n 20 "$1" >&2; die "no /$2/ in $1 after $3 s"; }
    sleep 0.05
  done
}
# wait_exit NAME SECS: bounded wait for a started process to end, then forget it.
wait_exit() {
  local pid="${PID[$1]}" end=$((SECONDS + $2))
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$SECONDS" -ge "$end" ]; then
      echo "call_bench: $1 still running after $2 s, terminating" >&2
      kill -TERM "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.1
  done
  wait "$pid" 2>/dev/null || true
  unset "PID[$1]"
}
cpu_seconds() { # PID -> utime+stime in seconds
  awk -v tck="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}
peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }
port_used() { # PORT [LAST]: any UDP or TCP socket bound in PORT..LAST
  local last="${2:-$1}"
  ss -Hanu "( sport >= :$1 and sport <= :$last )" | grep -q . ||
    ss -Hant "( sport >= :$1 and sport <= :$last )" | grep -q .
}
# next_port: sets NEXT_PORT to a free block: SIP P (UDP+TCP), TLS P+1, RTP P+10..P+29,
# baresip console P+100.
next_port() {
  NEXT_PORT=$((NEXT_PORT + 200))
  while port_used "$NEXT_PORT" $((NEXT_PORT + 1)) || port_used $((NEXT_PORT + 10)) $((NEXT_PORT + 29)) ||
    port_used $((NEXT_PORT + 100)); do
    NEXT_PORT=$((NEXT_PORT + 200))
  done
}
# source_wav CODEC: the WAV both UAs play for CODEC (speech twice, then silence; at the
# codec's rate, as baresip's aufile needs).
source_wav() {
  local rate src
  case "$1" in
    opus) rate=48000 src="$SHARED/audio/speech48k.wav" ;;
    pcmu) rate=8000 src="$SHARED/audio/speech8k.wav" ;;
    *) die "unknown codec $1" ;;
  esac
  [ -f "$TMP/src-$rate.wav" ] || sox "$src" "$src" "$TMP/src-$rate.wav" pad 0 $((CALL_SECONDS + 30))
  echo "$TMP/src-$rate.wav"
}

# ---------------------------------------------------------------- leg type: baresip
baresip_start() { # NAME CODEC PORT
  local name="$1" codec="$2" port="$3" d="$TMP/$1" wav cname
  wav="$(source_wav "$codec")"
  case "$codec" in
    opus) cname=opus/48000/2 ;;
    pcmu) cname=PCMU/8000/1 ;;
  esac
  mkdir -p "$d"
  cat >"$d/config" <<CFG
poll_method epoll
sip_listen 127.0.0.1:$port
net_interface 127.0.0.1
rtp_ports $((port + 10))-$((port + 29))
audio_player aubridge,$name
audio_alert aubridge,$name
audio_source aufile,$wav
ausrc_channels 1
auplay_channels 1
module_path /usr/lib/baresip/modules
module g711.so
module opus.so
module aubridge.so
module aufile.so
module cons.so
cons_listen 127.0.0.1:$((port + 100))
module_tmp account.so
module_app menu.so
CFG
  echo "<sip:$name@127.0.0.1:$port>;regint=0;answermode=auto;audio_codecs=$cname" >"$d/accounts"
  : >"$d/contacts"
  LOG[$name]="$TMP/$name.log"
  PORT[$name]="$port"
  stdbuf -oL -eL baresip -f "$d" -t $((CALL_SECONDS + 60)) </dev/null >"${LOG[$name]}" 2>&1 &
  PID[$name]=$!
  wait_log "${LOG[$name]}" "baresip is ready" 10
}
baresip_cmd() { printf '%s\n' "$2" >"/dev/udp/127.0.0.1/$((PORT[$1] + 100))"; }
baresip_dial() { baresip_cmd "$1" "/dial $2"; }
baresip_wait_established() { wait_log "${LOG[$1]}" "Call established" "$2"; }
baresip_hangup() { baresip_cmd "$1" "/hangup"; }
baresip_wait_ended() { wait_log "${LOG[$1]}" "session closed|terminated" "$2"; }
baresip_stop() { baresip_cmd "$1" "/quit"; wait_exit "$1" 5; }
baresip_uri() { echo "sip:$1@127.0.0.1:${PORT[$1]}"; }

# -------------------------------------------------------------- leg type: homeagent
# A caller is started by homeagent_dial (`homeagent call URI`); a callee by
# homeagent_start (`homeagent listen --calls 1`). Commands go to stdin through a FIFO.
homeagent_start() { # NAME CODEC PORT
  local name="$1" codec="$2" port="$3"
  LOG[$name]="$TMP/$name.jsonl"
  PORT[$name]="$port"
  ARGS[$name]="--bind 127.0.0.1:$port --rtp-ports $((port + 10))-$((port + 29)) --codecs $codec
    --audio-in $(source_wav "$codec") --audio-out null --hangup-after $((CALL_SECONDS + 15)) --json
    ${HOMEAGENT_ARGS:-}"
  mkfifo "$TMP/$name.stdin"
  exec {fd}<>"$TMP/$name.stdin"
  FD[$name]="$fd"
  if [ "${ROLE:-}" = callee ]; then homeagent_run "$name" listen --calls 1; fi
}
homeagent_run() { # NAME SUBCOMMAND ARGS...
  local name="$1"
  shift
  # shellcheck disable=SC2086 # ARGS holds whitespace-separated options, no spaces inside
  "$HOMEAGENT_BIN" "$@" ${ARGS[$name]} <&"${FD[$name]}" >"${LOG[$name]}" 2>"$TMP/$name.err" &
  PID[$name]=$!
  wait_log "${LOG[$name]}" '"event":"ready"' 10
}
homeagent_dial() { homeagent_run "$1" call "$2"; }
homeagent_wait_established() { wait_log "${LOG[$1]}" '"event":"established"' "$2"; }
homeagent_hangup() { printf '{"command":"hangup","call":1}\n' >&"${FD[$1]}"; }
homeagent_wait_ended() { wait_log "${LOG[$1]}" '"event":"ended"' "$2"; }
homeagent_stop() {
  local fd="${FD[$1]}"
  wait_exit "$1" 5
  grep -q '"event":"summary".*"result":"ok"' "${LOG[$1]}" ||
    echo "call_bench: $1: $(tail -n 1 "${LOG[$1]}")" >&2
  exec {fd}>&-
}
homeagent_uri() { echo "sip:$1@127.0.0.1:${PORT[$1]}"; }
# ------------------------------------------------------------------------------------

# capture_start NAME PORT_A PORT_B: dumpcap on lo, the two SIP ports only.
capture_start() {
  LOG[$1]="$TMP/$1.out"
  dumpcap -q -i lo -f "udp and (port $2 or port $3)" -w "$TMP/$1.pcapng" >"${LOG[$1]}" 2>&1 &
  PID[$1]=$!
  wait_log "${LOG[$1]}" "^File:" 10
}
capture_stop() { kill -TERM "${PID[$1]}" 2>/dev/null || true; wait_exit "$1" 5; }
# invite_200_ms NAME PORT_A PORT_B: first INVITE -> first 200 OK with CSeq INVITE, in ms.
invite_200_ms() {
  tshark -r "$TMP/$1.pcapng" -d "udp.port==$2,sip" -d "udp.port==$3,sip" -Y sip \
    -T fields -E separator=' ' -e frame.time_epoch -e sip.Method -e sip.Status-Code \
    -e sip.CSeq.method 2>/dev/null | awk '
      $2 == "INVITE" && !t0 { t0 = $1 }
      $2 == "200" && $3 == "INVITE" && t0 && !t1 { t1 = $1 }
      END { if (t0 && t1) printf "%.1f", (t1 - t0) * 1000; else printf "n/a" }'
}

command -v baresip >/dev/null || die "baresip not installed"
command -v dumpcap >/dev/null && command -v tshark >/dev/null || die "tshark/dumpcap not installed"
case " $PAIRS " in
  *homeagent*) [ -x "$HOMEAGENT_BIN" ] || die "no $HOMEAGENT_BIN (cargo build --release -p homeagent-cli)" ;;
esac

row() { printf '%-20s %-6s %-10s %-7s %10s %11s %12s %13s\n' "$@"; }
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
row pair codec leg role cpu_call_s cpu_total_s peak_rss_MiB invite_200_ms
n=0
for codec in $CODECS; do
  for pair in $PAIRS; do
    n=$((n + 1))
    caller_type="${pair%%:*}" callee_type="${pair##*:}"
    caller="c${n}_a_$codec" callee="c${n}_b_$codec" capture="c${n}_cap"
    next_port
    ROLE=callee "${callee_type}_start" "$callee" "$codec" "$NEXT_PORT"
    next_port
    ROLE=caller "${caller_type}_start" "$caller" "$codec" "$NEXT_PORT"
    capture_start "$capture" "${PORT[$caller]}" "${PORT[$callee]}"
    "${caller_type}_dial" "$caller" "$("${callee_type}_uri" "$callee")"
    "${caller_type}_wait_established" "$caller" 10
    "${callee_type}_wait_established" "$callee" 10
    declare -A cpu0=([caller]="$(cpu_seconds "${PID[$caller]}")" [callee]="$(cpu_seconds "${PID[$callee]}")")
    sleep "$CALL_SECONDS"
    declare -A cpu1 rss
    for leg in caller callee; do
      cpu1[$leg]="$(cpu_seconds "${PID[${!leg}]}")"
      rss[$leg]="$(peak_rss_mib "${PID[${!leg}]}")"
    done
    "${caller_type}_hangup" "$caller"
    "${callee_type}_wait_ended" "$callee" 10
    "${caller_type}_stop" "$caller"
    "${callee_type}_stop" "$callee"
    capture_stop "$capture"
    ms="$(invite_200_ms "$capture" "${PORT[$caller]}" "${PORT[$callee]}")"
    for leg in caller callee; do
      type_var="${leg}_type"
      call="$(awk -v a="${cpu1[$leg]}" -v b="${cpu0[$leg]}" 'BEGIN { printf "%.2f", a - b }')"
      row "$caller_type->$callee_type" "$codec" "${!type_var}" "$leg" "$call" "${cpu1[$leg]}" \
        "${rss[$leg]}" "$ms"
    done
  done
done
echo "(${CALL_SECONDS} s calls on 127.0.0.1; invite_200_ms is per call, measured on the wire," \
  "so it is mostly the callee's answering time)"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg); script took $((SECONDS - STARTED_AT)) s"
echo "baresip reference: 0.93 CPU-s per 30 s Opus leg, 0.37 PCMU, 8.3 MiB peak RSS, 1.4 ms INVITE→200 OK"
