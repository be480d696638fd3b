#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""A minimal client of the length-framed JSON-RPC protocol (proto/PROTOCOL.md)
for shell tests: one request, the response printed as compact JSON.

  rpc.py SOCKET METHOD [PARAMS_JSON]     one request, print the response
  rpc.py --raw SOCKET HEXBYTES            send raw bytes, print what comes back
  rpc.py --console SOCKET SEND EXPECT T   console socket: read until EXPECT
                                          (or T seconds), after sending SEND
  rpc.py --vm-console SOCKET PARAMS SEND EXPECT T
                                          vmmd's vm.console upgrade: print the
                                          response, then as --console
  rpc.py --pipeline SOCKET METHOD PARAMS [METHOD PARAMS]...
                                          requests with ids 1.. on one
                                          connection; print each response as
                                          it arrives
  rpc.py --events SOCKET PARAMS N T       events.subscribe, then print up to
                                          N notifications (or for T seconds)
Options before any of these (all optional):
  --as-uid N                              switch to uid and gid N (no
                                          supplementary groups) first
  --raw-wait S                            with --raw: wait S seconds (not 5)
                                          for the answer and for the close
  --tls-cert F --tls-key F --tls-ca F     SOCKET may be tls://HOST:PORT:
                                          TLS with this client certificate
                                          (none without --tls-cert), the
                                          server verified against the CA
Exit status: 0 on a result, 1 on an error response, 3 when it cannot connect.
"""
import json
import socket
import struct
import sys
import time


TLS = {}


def connect(path):
    if path.startswith("tls://"):
        import ssl
        host, port = path[len("tls://"):].rsplit(":", 1)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        if TLS.get("ca"):
            ctx.load_verify_locations(TLS["ca"])
        if TLS.get("cert"):
            ctx.load_cert_chain(TLS["cert"], TLS.get("key"))
        try:
            raw = socket.create_connection((host, int(port)), timeout=10)
            s = ctx.wrap_socket(raw)
        except (OSError, ssl.SSLError) as e:
            print("cannot connect to %s: %s" % (path, e), file=sys.stderr)
            sys.exit(3)
        return s
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(path)
    except OSError as e:
        print("cannot connect to %s: %s" % (path, e), file=sys.stderr)
        sys.exit(3)
    return s


def read_exact(s, n):
    buf = b""
    while len(buf) < n:
        chunk = s.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def read_frame(s):
    hdr = read_exact(s, 4)
    if hdr is None:
        return None
    (n,) = struct.unpack(">I", hdr)
    return read_exact(s, n)


def main():
    args = sys.argv[1:]
    raw_wait = 5
    while args and args[0] in ("--as-uid", "--tls-cert", "--tls-key",
                               "--tls-ca", "--raw-wait"):
        opt, val, args = args[0], args[1], args[2:]
        if opt == "--raw-wait":
            raw_wait = float(val)
        elif opt == "--as-uid":
            import os
            os.setgroups([])
            os.setgid(int(val))
            os.setuid(int(val))
        else:
            TLS[opt[len("--tls-"):]] = val
    if args and args[0] == "--raw":
        s = connect(args[1])
        s.settimeout(raw_wait)
        s.sendall(bytes.fromhex(args[2]))
        try:
            f = read_frame(s)
        except socket.timeout:
            f = None
        print(f.decode() if f else "EOF")
        # After an error on a bad frame the connection must be closed.
        try:
            more = s.recv(1)
            print("CLOSED" if more == b"" else "OPEN")
        except socket.timeout:
            print("OPEN")
        return 0
    if args and args[0] == "--console":
        s = connect(args[1])
        send, expect, limit = args[2], args[3], float(args[4])
        s.settimeout(0.2)
        if send:
            time.sleep(0.2)
            s.sendall(send.encode().decode("unicode_escape").encode())
        got = b""
        end = time.time() + limit
        while time.time() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
            if expect and expect.encode() in got:
                break
        sys.stdout.write(got.decode(errors="replace"))
        return 0 if (not expect or expect.encode() in got) else 1
    if args and args[0] == "--vm-console":
        s = connect(args[1])
        s.settimeout(30)
        params, send, expect, limit = args[2], args[3], args[4], float(args[5])
        req = {"jsonrpc": "2.0", "id": 1, "method": "vm.console",
               "params": json.loads(params)}
        data = json.dumps(req).encode()
        s.sendall(struct.pack(">I", len(data)) + data)
        f = read_frame(s)
        if f is None:
            print("EOF")
            return 1
        msg = json.loads(f)
        print(json.dumps(msg, sort_keys=True))
        sys.stdout.flush()
        if "error" in msg:
            return 1
        s.settimeout(0.2)
        if send:
            time.sleep(0.2)
            s.sendall(send.encode().decode("unicode_escape").encode())
        got = b""
        end = time.time() + limit
        while time.time() < end:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
            if expect and expect.encode() in got:
                break
        sys.stdout.write(got.decode(errors="replace"))
        return 0 if (not expect or expect.encode() in got) else 1
    if args and args[0] == "--pipeline":
        s = connect(args[1])
        s.settimeout(60)
        pairs = args[2:]
        out = b""
        for i in range(0, len(pairs), 2):
            req = {"jsonrpc": "2.0", "id": i // 2 + 1, "method": pairs[i]}
            if pairs[i + 1]:
                req["params"] = json.loads(pairs[i + 1])
            data = json.dumps(req).encode()
            out += struct.pack(">I", len(data)) + data
        s.sendall(out)
        bad = 0
        for _ in range(len(pairs) // 2):
            f = read_frame(s)
            if f is None:
                print("EOF")
                return 1
            msg = json.loads(f)
            bad |= "error" in msg
            print(json.dumps(msg, sort_keys=True))
            sys.stdout.flush()
        return 1 if bad else 0
    if args and args[0] == "--events":
        s = connect(args[1])
        want, limit = int(args[3]), float(args[4])
        req = {"jsonrpc": "2.0", "id": 1, "method": "events.subscribe",
               "params": json.loads(args[2])}
        data = json.dumps(req).encode()
        s.sendall(struct.pack(">I", len(data)) + data)
        end = time.time() + limit
        seen = 0
        while seen < want and time.time() < end:
            s.settimeout(max(0.05, end - time.time()))
            try:
                f = read_frame(s)
            except socket.timeout:
                break
            if f is None:
                break
            msg = json.loads(f)
            print(json.dumps(msg, sort_keys=True))
            sys.stdout.flush()
            if msg.get("method") == "event":
                seen += 1
        return 0 if seen >= want else 1
    path, method = args[0], args[1]
    req = {"jsonrpc": "2.0", "id": 1, "method": method}
    if len(args) > 2:
        req["params"] = json.loads(args[2])
    s = connect(path)
    s.settimeout(30)
    data = json.dumps(req).encode()
    s.sendall(struct.pack(">I", len(data)) + data)
    f = read_frame(s)
    if f is None:
        print("EOF")
        return 1
    msg = json.loads(f)
    print(json.dumps(msg, sort_keys=True))
    return 1 if "error" in msg else 0


if __name__ == "__main__":
    sys.exit(main())
