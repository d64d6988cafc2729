#!/usr/bin/env bash
# bench/baresip_baseline.sh — baseline figures for a loopback call between two UAs:
# per leg, CPU seconds (utime+stime from /proc/PID/stat, during the call and in total),
# peak RSS (VmHWM), and the caller's INVITE -> 200 OK time (from the caller's SIP trace,
# each log line time-stamped with $EPOCHREALTIME as it is printed).
#
#   bench/baresip_baseline.sh                 # Opus then PCMU, 30 s each
#   CALL_SECONDS=10 CODECS="pcmu" bench/baresip_baseline.sh
#   BENCH_PORT_BASE=27000 BENCH_KEEP=1 ...    # ports, keep logs
#
# Structure: a leg type T provides T_start NAME CODEC PORT, T_dial NAME URI, T_hangup NAME,
# T_pid NAME, T_uri NAME, T_wait_established NAME SECS and T_setup_ms NAME (caller's
# INVITE -> 200 OK in ms). Only the "baresip" type is here;
# add e.g. "homeagent" with the same seven functions and list it in PAIRS.
# Loopback only, every wait bounded, only the processes started here are stopped (by PID).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SHARED="${HOMEAGENT_SHARED:-$HERE/../../shared}"
CALL_SECONDS="${CALL_SECONDS:-30}"
CODECS="${CODECS:-opus pcmu}"
PAIRS="${PAIRS:-baresip:baresip}"          # caller_type:callee_type ...
PORT_BASE="${BENCH_PORT_BASE:-27000}"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/ha-bench.XXXXXX")"
CLK_TCK="$(getconf CLK_TCK)"
declare -A PID PORT LOG
NEXT_PORT="$PORT_BASE"

cleanup() {
  local name
  for name in "${!PID[@]}"; do kill -TERM "${PID[$name]}" 2>/dev/null || true; done
  sleep 0.5
  for name in "${!PID[@]}"; do kill -KILL "${PID[$name]}" 2>/dev/null || true; done
  if [ -n "${BENCH_KEEP:-}" ]; then echo "logs kept in $TMP" >&2; else rm -rf "$TMP"; fi
}
trap cleanup EXIT

die() { echo "baresip_baseline: $*" >&2; exit 1; }
# wait_log FILE REGEX SECS: bounded wait for a line.
wait_log() {
  local end=$((SECONDS + $3))
  until grep -qE "$2" "$1" 2>/dev/null; do
    [ "$SECONDS" -lt "$end" ] || { tail -n 20 "$1" >&2; die "no /$2/ in $1 after $3 s"; }
    sleep 0.1
  done
}
# Prefix each line with the time it was read.
stamp() { while IFS= read -r line; do printf '%s %s\n' "$EPOCHREALTIME" "$line"; done; }
cpu_seconds() { # PID -> utime+stime in seconds
  awk -v tck="$CLK_TCK" '{ sub(/^.*\) /, ""); printf "%.2f", ($12 + $13) / tck }' "/proc/$1/stat"
}
peak_rss_kb() { awk '/^VmHWM:/ { print $2 }' "/proc/$1/status"; }
port_used() { ss -Hlnu "sport = :$1" | grep -q . || ss -Hlnt "sport = :$1" | grep -q .; }
next_port() { # sets NEXT_PORT to a free block: SIP P (UDP+TCP), TLS P+1, console P+100
  NEXT_PORT=$((NEXT_PORT + 200))
  while port_used "$NEXT_PORT" || port_used $((NEXT_PORT + 1)) || port_used $((NEXT_PORT + 100)); do
    NEXT_PORT=$((NEXT_PORT + 200))
  done
}

# ---------------------------------------------------------------- leg type: baresip
baresip_start() { # NAME CODEC PORT
  local name="$1" codec="$2" port="$3" d="$TMP/$1" src rate cname
  case "$codec" in
    opus) rate=48000 cname=opus/48000/2 src="$SHARED/audio/speech48k.wav" ;;
    pcmu) rate=8000 cname=PCMU/8000/1 src="$SHARED/audio/speech8k.wav" ;;
    *) die "unknown codec $codec" ;;
  esac
  mkdir -p "$d"
  # Speech twice, then silence: aufile hangs up the call when its file ends.
  [ -f "$TMP/src-$rate.wav" ] || sox "$src" "$src" "$TMP/src-$rate.wav" pad 0 30
  cat >"$d/config" <<CFG
poll_method epoll
sip_listen 127.0.0.1:$port
net_interface 127.0.0.1
audio_player aubridge,$name
audio_alert aubridge,$name
audio_source aufile,$TMP/src-$rate.wav
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
  stdbuf -oL -eL baresip -f "$d" -s -t $((CALL_SECONDS + 60)) </dev/null \
    > >(stamp >"${LOG[$name]}") 2>&1 &
  PID[$name]=$!
  wait_log "${LOG[$name]}" "baresip is ready" 10
}
baresip_cmd() { printf '%s\n' "$2" >"/dev/udp/127.0.0.1/$((PORT[$1] + 100))"; }
baresip_dial() { baresip_cmd "$1" "/dial $2"; }
baresip_hangup() { baresip_cmd "$1" "/hangup"; }
baresip_pid() { echo "${PID[$1]}"; }
baresip_uri() { echo "sip:$1@127.0.0.1:${PORT[$1]}"; }
baresip_wait_established() { wait_log "${LOG[$1]}" "Call established" "$2"; }
# INVITE -> 200 OK (ms) from the caller's time-stamped SIP trace: the first block whose
# first line is an INVITE, to the first "SIP/2.0 200" block with "CSeq: N INVITE".
baresip_setup_ms() {
  awk '
    { sub(/\r$/, "") }
    $2 ~ /#$/ { inblock = 1; first = ""; next }
    inblock && first == "" && $2 ~ /^(UDP|TCP|TLS)$/ { next }
    inblock && first == "" { first = $0; t = $1; if ($2 == "INVITE" && !t0) t0 = t; next }
    inblock && $2 == "CSeq:" && $4 == "INVITE" && first ~ / SIP\/2.0 200 / && t0 && !t1 { t1 = t }
    END { if (t0 && t1) printf "%.1f", (t1 - t0) * 1000; else printf "n/a" }
  ' "${LOG[$1]}"
}
# ------------------------------------------------------------------------------------

printf '%-6s %-8s %-7s %10s %10s %12s %14s\n' codec leg role cpu_call_s cpu_total_s peak_rss_kb invite_200_ms
for codec in $CODECS; do
  for pair in $PAIRS; do
    caller_type="${pair%%:*}" callee_type="${pair##*:}"
    caller="a_$codec" callee="b_$codec"
    next_port
    "${callee_type}_start" "$callee" "$codec" "$NEXT_PORT"
    next_port
    "${caller_type}_start" "$caller" "$codec" "$NEXT_PORT"
    "${caller_type}_dial" "$caller" "$("${callee_type}_uri" "$callee")"
    "${caller_type}_wait_established" "$caller" 10
    "${callee_type}_wait_established" "$callee" 10
    cpu0_caller="$(cpu_seconds "$("${caller_type}_pid" "$caller")")"
    cpu0_callee="$(cpu_seconds "$("${callee_type}_pid" "$callee")")"
    sleep "$CALL_SECONDS"
    for leg in caller callee; do
      name="${!leg}" type_var="${leg}_type"
      type="${!type_var}" cpu0_var="cpu0_$leg"
      pid="$("${type}_pid" "$name")"
      total="$(cpu_seconds "$pid")"
      call="$(awk -v a="$total" -v b="${!cpu0_var}" 'BEGIN { printf "%.2f", a - b }')"
      ms="-"
      if [ "$leg" = caller ]; then ms="$("${type}_setup_ms" "$name")"; fi
      printf '%-6s %-8s %-7s %10s %10s %12s %14s\n' "$codec" "$type" "$leg" "$call" "$total" \
        "$(peak_rss_kb "$pid")" "$ms"
    done
    "${caller_type}_hangup" "$caller"
    wait_log "${LOG[$callee]}" "session closed|terminated" 10
    for name in "$caller" "$callee"; do
      kill -TERM "${PID[$name]}" 2>/dev/null || true
      unset "PID[$name]"
    done
  done
done
echo "(${CALL_SECONDS} s calls on loopback; cpu_call_s = CPU used between 'Call established' and hang-up)"
