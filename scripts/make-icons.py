#!/usr/bin/env python3
"""Draws the Homeagent app icon (a headset mark on a green rounded square) as RGBA PNGs in
icons/ at the sizes the Tauri bundle needs. Standard library only."""
import math
import pathlib
import struct
import zlib

GREEN = (11, 110, 79)
WHITE = (255, 255, 255)


def pixel(x, y):
    """Colour and alpha at (x, y) in the unit square."""
    # Rounded square: distance outside the inner rectangle.
    r = 0.18
    dx = max(abs(x - 0.5) - (0.5 - r) + 0.03, 0)
    dy = max(abs(y - 0.5) - (0.5 - r) + 0.03, 0)
    if math.hypot(dx, dy) > r:
        return (0, 0, 0, 0)
    cx, cy = x - 0.5, y - 0.52
    dist = math.hypot(cx, cy)
    # Headband: the upper half of a ring.
    if 0.24 <= dist <= 0.30 and cy <= 0.02:
        return WHITE + (255,)
    # Ear cups.
    for side in (-1, 1):
        if abs(cx - side * 0.27) <= 0.07 and 0.0 <= cy <= 0.2:
            return WHITE + (255,)
    # Microphone boom and tip.
    if abs(cy - 0.2) <= 0.025 and -0.2 <= cx <= 0.22:
        return WHITE + (255,)
    if math.hypot(cx + 0.2, cy - 0.2) <= 0.05:
        return WHITE + (255,)
    return GREEN + (255,)


def png(size):
    rows = []
    for j in range(size):
        row = bytearray([0])
        for i in range(size):
            # 2x2 supersampling.
            samples = [pixel((i + a) / size, (j + b) / size) for a in (0.25, 0.75) for b in (0.25, 0.75)]
            alpha = sum(s[3] for s in samples) / 4
            if alpha == 0:
                row += bytes(4)
                continue
            colour = [sum(s[k] * s[3] for s in samples) / (alpha * 4) for k in range(3)]
            row += bytes(int(c) for c in colour) + bytes([int(alpha)])
        rows.append(bytes(row))

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header)
            + chunk(b"IDAT", zlib.compress(b"".join(rows), 9)) + chunk(b"IEND", b""))


out = pathlib.Path(__file__).resolve().parent.parent / "icons"
out.mkdir(exist_ok=True)
for name, size in [("32x32.png", 32), ("128x128.png", 128), ("128x128@2x.png", 256), ("icon.png", 512)]:
    (out / name).write_bytes(png(size))
    print(out / name)
