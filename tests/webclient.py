"""webclient.py — a raw HTTP and WebSocket client for the web view's tests.

The browser tests (tests/node/web_browser.mjs) use Chromium; this client is
for what a browser will not send: frames over the size limit, floods,
non-UTF-8 text, a reader that stops reading, any Origin or Host header.
Standard library only (RFC 6455 framing, client side, masked).
"""
import base64
import http.client
import json
import os
import socket
import struct
import time


def login(port, token):
    """POST the token to /login; the session cookie's value, or None."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("POST", "/login", body=token, headers={"Content-Type": "text/plain"})
    r = conn.getresponse()
    r.read()
    cookie = r.getheader("Set-Cookie") or ""
    conn.close()
    if r.status != 204 or not cookie.startswith("aip_session="):
        return None
    return cookie.split(";")[0].split("=", 1)[1]


def get(port, path, cookie=None, headers=None, method="GET", body=None):
    """(status, headers, body) of one request."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    h = dict(headers or {})
    if cookie:
        h["Cookie"] = "aip_session=" + cookie
    conn.request(method, path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, dict((k.lower(), v) for k, v in r.getheaders()), data


class WebSocket:
    """One WebSocket to webd. connect() raises ValueError with the HTTP
    status line when the upgrade is refused."""

    def __init__(self, port, cookie=None, origin=None, host=None, timeout=10):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""
        key = base64.b64encode(os.urandom(16)).decode()
        lines = ["GET /ws HTTP/1.1",
                 "Host: %s" % (host or "127.0.0.1:%d" % port),
                 "Upgrade: websocket", "Connection: Upgrade",
                 "Sec-WebSocket-Key: " + key, "Sec-WebSocket-Version: 13"]
        if origin is not False:
            lines.append("Origin: " + (origin or "http://127.0.0.1:%d" % port))
        if cookie:
            lines.append("Cookie: aip_session=" + cookie)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ValueError("closed during the handshake")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = head.split(b"\r\n")[0].decode()
        if " 101 " not in status:
            self.sock.close()
            raise ValueError(status)

    def send_frame(self, payload, opcode=1, fin=True):
        self.sock.sendall(self.frame(payload, opcode, fin))

    def frame(self, payload, opcode=1, fin=True):
        """The bytes of one masked frame (to send many in one write)."""
        header = bytes([(0x80 if fin else 0) | opcode])
        n = len(payload)
        if n < 126:
            header += bytes([0x80 | n])
        elif n < 65536:
            header += bytes([0x80 | 126]) + struct.pack("!H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack("!Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if n < 65536 else \
            _mask_fast(payload, mask)
        return header + mask + masked

    def send(self, doc):
        self.send_frame(json.dumps(doc).encode())

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def recv_frame(self):
        """(opcode, payload) of the next frame; EOFError when closed."""
        b0, b1 = self._read(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._read(8))[0]
        return b0 & 0x0F, self._read(n)

    def recv(self, timeout=10):
        """The next JSON document; a close frame raises EOFError with its code."""
        self.sock.settimeout(timeout)
        while True:
            opcode, payload = self.recv_frame()
            if opcode == 1:
                return json.loads(payload.decode())
            if opcode == 8:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                raise EOFError(code)

    def wait_for(self, predicate, timeout=10):
        """The first document predicate accepts (others are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching document within %s s" % timeout)
            doc = self.recv(left)
            if predicate(doc):
                return doc

    def closed(self, timeout=10):
        """The close code once webd closes (None: closed without a code)."""
        self.sock.settimeout(timeout)
        try:
            while True:
                self.recv(timeout)
        except EOFError as e:
            return e.args[0] if e.args and isinstance(e.args[0], int) else None
        except (ConnectionResetError, BrokenPipeError):
            return None

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass


def _mask_fast(payload, mask):
    n = len(payload)
    key = (mask * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")).to_bytes(n, "big")
