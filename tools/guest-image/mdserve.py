#!/usr/bin/env python3
"""Nubo tiny guest test helper: a one-connection metadata HTTP responder.

QEMU's user-mode network runs it once per guest TCP connection to the
guestfwd address (guestfwd=tcp:169.254.169.254:80-cmd:python3 mdserve.py ROOT):
the connection is on stdin/stdout. It answers GET requests with files from
ROOT (e.g. ROOT/openstack/latest/meta_data.json), 404 for anything else, and
appends one line per request to ROOT/../requests.log.
Usage: mdserve.py ROOT
"""
import os
import sys


def main() -> int:
    root = os.path.realpath(sys.argv[1])
    rfile = sys.stdin.buffer
    wfile = sys.stdout.buffer
    request = rfile.readline().decode("latin-1").strip()
    # skip the headers
    while True:
        line = rfile.readline()
        if not line or line in (b"\r\n", b"\n"):
            break
    parts = request.split()
    path = parts[1] if len(parts) >= 2 else "/"
    path = path.split("?", 1)[0]
    target = os.path.realpath(os.path.join(root, path.lstrip("/")))
    status = "404 Not Found"
    body = b"Not Found\n"
    if parts and parts[0] == "GET" and (target + os.sep).startswith(root + os.sep) and os.path.isfile(target):
        with open(target, "rb") as f:
            body = f.read()
        status = "200 OK"
    with open(os.path.join(os.path.dirname(root), "requests.log"), "a") as log:
        log.write(f"{request} -> {status.split()[0]}\n")
    head = (
        f"HTTP/1.0 {status}\r\nContent-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    wfile.write(head.encode("latin-1") + body)
    wfile.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
