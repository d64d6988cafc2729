#!/usr/bin/env python3
"""Scores one call of bench/quality_bench.sh and prints one JSON line.

usage: cell.py --score SCORE_PY --ref REF.wav --mode nb|wb --relay RELAY.json
               --sender homeagent|baresip --receiver homeagent|baresip
               --heard HEARD.wav [--sent SENT.wav]

The caller (namespace A) sends the reference speech; the callee (namespace B) records what
it hears. PESQ is score.py's figure for HEARD against REF.

Playout delay (ms) = when a speech sample is played by the receiver - when the sender sent
it - the relay's base delay. Both ends are put on the relay's clock (ha-impair reports,
per media flow, when it read the first RTP packet, in ms since it started):
  * homeagent sender: it reads its --audio-in WAV from the start, one frame per RTP packet,
    so reference sample 0 leaves with its first RTP packet: T_sent = first RTP A->B.
  * baresip sender: its sndfile "-enc.wav" dump (what it encoded) starts with its first
    RTP packet; the speech starts score.py's lag_ms into that dump:
    T_sent = first RTP A->B + lag(enc dump vs REF).
  * homeagent receiver: its --audio-out WAV is clocked like a sound card and written on
    the same audio tick as the frame it sends, so its sample 0 is played when its first
    RTP packet B->A leaves: T_played = first RTP B->A + lag(HEARD vs REF).
  * baresip receiver: its "-dec.wav" dump is the decoder's output, written as packets are
    decoded, before baresip's audio buffer and player; it has no wall clock. Anchored at
    the relay's first delivery A->B, the figure ("dec") leaves out baresip's player buffer
    and is NOT comparable with homeagent's; shown for information.
The delay includes the receiver's frame-clock phase (0-20 ms) and one packet time.
"""
import argparse
import json
import subprocess
import sys


def score(score_py, ref, deg, mode):
    out = subprocess.run([sys.executable, score_py, ref, deg, mode],
                         capture_output=True, text=True)
    try:
        return json.loads(out.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        return {"error": (out.stdout + out.stderr).strip()[-300:]}


def first_rtp(direction):
    for flow in direction.get("flows", []):
        if not flow.get("rtcp"):
            return flow
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--score", required=True)
    ap.add_argument("--ref", required=True)
    ap.add_argument("--mode", choices=["nb", "wb"], required=True)
    ap.add_argument("--relay", required=True)
    ap.add_argument("--sender", choices=["homeagent", "baresip"], required=True)
    ap.add_argument("--receiver", choices=["homeagent", "baresip"], required=True)
    ap.add_argument("--heard", required=True)
    ap.add_argument("--sent")
    a = ap.parse_args()

    res = {}
    heard = score(a.score, a.ref, a.heard, a.mode)
    res["pesq"] = heard.get("pesq")
    res["lag_ms"] = heard.get("lag_ms")
    if "error" in heard:
        res["error"] = heard["error"]
    try:
        with open(a.relay) as f:
            relay = json.loads(f.read().strip().splitlines()[-1])
    except (OSError, IndexError, json.JSONDecodeError) as e:
        res["error"] = f"relay summary: {e}"
        print(json.dumps(res))
        return
    base = relay.get("base_delay_ms", 0.0)
    forward, backward = first_rtp(relay["a_to_b"]), first_rtp(relay["b_to_a"])
    if forward:
        res["loss_pct"] = round(100.0 * forward["lost"] / max(forward["sent"], 1), 1)
    sent_lag = 0.0
    if a.sender == "baresip":
        sent = score(a.score, a.ref, a.sent, a.mode) if a.sent else {}
        sent_lag = sent.get("lag_ms")
    if heard.get("lag_ms") is None or sent_lag is None or forward is None:
        res["delay_ms"] = None
    else:
        t_sent = forward["first_ms"] + sent_lag
        if a.receiver == "homeagent":
            anchor = backward["first_ms"] if backward else None
            res["delay_kind"] = "playout"
        else:
            anchor = forward.get("first_delivered_ms")
            res["delay_kind"] = "dec"
        if anchor is None:
            res["delay_ms"] = None
        else:
            res["delay_ms"] = round(anchor + heard["lag_ms"] - t_sent - base, 1)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
