#!/usr/bin/env python3
"""Plays one JT/T 808 terminal against a jt808 gateway: registers (or
authenticates with --code), then sends one location report, and prints each
answer. Standard library only; the frames are built here from the standard
(header, XOR checksum, 0x7E/0x7D escaping, BCD, GBK, GMT+8 time).

    python3 deploy/local/jt808_terminal.py 127.0.0.1:6808 13910000001 '京A·D0001' \
        --lat 39.9012 --lon 116.7498 --speed 32.5 --heading 87

A terminal registers once: pass the code it printed with --code afterwards.
"""
import argparse
import datetime
import socket
import struct

RESULTS = {0: "ok", 1: "fail", 2: "bad message", 3: "unsupported"}


def frame(msg_id, number, serial, body):
    header = struct.pack(">HH", msg_id, len(body)) + bytes.fromhex(number.rjust(12, "0")) + struct.pack(">H", serial)
    message = header + body
    check = 0
    for b in message:
        check ^= b
    escaped = (message + bytes([check])).replace(b"\x7d", b"\x7d\x01").replace(b"\x7e", b"\x7d\x02")
    return b"\x7e" + escaped + b"\x7e"


def answer(sock):
    data = b""
    while data.count(b"\x7e") < 2:
        chunk = sock.recv(1024)
        if not chunk:
            raise SystemExit("the gateway closed the connection")
        data += chunk
    inner = data.split(b"\x7e")[1].replace(b"\x7d\x02", b"\x7e").replace(b"\x7d\x01", b"\x7d")
    msg_id, props = struct.unpack(">HH", inner[:4])
    return msg_id, inner[12:12 + (props & 0x3FF)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gateway", help="host:port of the jt808 gateway")
    p.add_argument("number", help="the terminal's phone number (its registry entry)")
    p.add_argument("plate", help="the vehicle's plate, as in the registry")
    p.add_argument("--code", help="the authentication code from an earlier registration")
    p.add_argument("--lat", type=float, default=39.9012)
    p.add_argument("--lon", type=float, default=116.7498)
    p.add_argument("--speed", type=float, default=32.5, help="km/h")
    p.add_argument("--heading", type=int, default=87)
    p.add_argument("--odometer", type=float, default=18230.4, help="km")
    args = p.parse_args()
    host, port = args.gateway.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=15)

    code = args.code
    if code is None:
        body = struct.pack(">HH", 11, 112) + b"CBDEV" + b"jt808_terminal.py".ljust(20, b"\0")
        body += b"T000001" + bytes([1]) + args.plate.encode("gbk")
        sock.sendall(frame(0x0100, args.number, 1, body))
        msg_id, body = answer(sock)
        result = body[2]
        code = body[3:].decode()
        print(f"register     -> {msg_id:#06x} result {result}" + (f", code {code}" if result == 0 else ""))
        if result != 0:
            return
    sock.sendall(frame(0x0102, args.number, 2, code.encode()))
    msg_id, body = answer(sock)
    print(f"authenticate -> {msg_id:#06x} result {body[4]} ({RESULTS.get(body[4])})")

    now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8)))
    status = 0b11  # ACC on, GNSS fixed
    body = struct.pack(">IIIIHHH", 0, status, round(args.lat * 1e6), round(args.lon * 1e6), 30,
                       round(args.speed * 10), args.heading)
    body += bytes.fromhex(now.strftime("%y%m%d%H%M%S"))
    body += b"\x01\x04" + struct.pack(">I", round(args.odometer * 10))
    sock.sendall(frame(0x0200, args.number, 3, body))
    msg_id, body = answer(sock)
    print(f"location     -> {msg_id:#06x} result {body[4]} ({RESULTS.get(body[4])}) at {now:%Y-%m-%d %H:%M:%S} GMT+8")


if __name__ == "__main__":
    main()
