#!/usr/bin/env python3
"""Prints the quality bench tables from its result lines (one JSON object per cell, with
codec, pair, profile, pesq, delay_ms, delay_kind, loss_pct).

usage: table.py RESULTS.jsonl "CODEC..." "CALLER:CALLEE..." PROFILE...
"""
import json
import sys

NAMES = {"homeagent": "ours", "baresip": "baresip"}


def main():
    path, codecs, pairs, profiles = sys.argv[1], sys.argv[2].split(), sys.argv[3].split(), sys.argv[4:]
    cells = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                r = json.loads(line)
                cells[(r["codec"], r["pair"], r["profile"])] = r

    def label(pair):
        caller, callee = pair.split(":")
        return f"{NAMES[caller]}->{NAMES[callee]}"

    def fmt_pesq(r):
        if r is None:
            return "-"
        return f"{r['pesq']:.2f}" if r.get("pesq") is not None else "ERR"

    def fmt_delay(r):
        if r is None or r.get("delay_ms") is None:
            return "-"
        if r.get("delay_kind") != "dec":
            return f"{r['delay_ms']:.0f}"
        # baresip's decoder dump has no gap for a lost packet: under loss it runs early.
        return "n/c" if r.get("loss_pct") else f"{r['delay_ms']:.0f}*"

    def fmt_loss(r):
        if r is None or r.get("loss_pct") is None:
            return "-"
        return f"{r['loss_pct']:.1f}"

    width = max([len(p) for p in profiles] + [7])
    for codec in codecs:
        mode = "PESQ-WB" if codec == "opus" else "PESQ-NB"
        for title, fmt in ((mode, fmt_pesq), ("playout delay, ms", fmt_delay),
                           ("measured loss A->B, %", fmt_loss)):
            print(f"\n{codec.upper()}: {title}")
            print(f"{'pair':<18}" + "".join(f"{p:>{width + 2}}" for p in profiles))
            for pair in pairs:
                row = [fmt(cells.get((codec, pair, p))) for p in profiles]
                print(f"{label(pair):<18}" + "".join(f"{c:>{width + 2}}" for c in row))
    errors = [(k, r["error"]) for k, r in cells.items() if r.get("error")]
    for key, error in errors:
        print(f"error {key}: {error}")
    print("\n* baresip receiver: delay of its decoder output (before its audio buffer and"
          " player), not comparable with ours;\n  n/c: not computable (its decoder dump"
          " has no gaps for lost packets). See bench/quality/cell.py.")


if __name__ == "__main__":
    main()
