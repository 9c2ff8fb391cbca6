#!/usr/bin/env python3
"""Writes the hand-made seed corpora under fuzz/corpus/<target>/.

Run from anywhere: `python3 fuzz/seeds.py`. Existing seeds of the same name
are overwritten; seeds the fuzzer added are left alone. The cache entries
are built from metadata Veil itself wrote (seed-cache-metas.jsonl, taken
from a real cache directory), with the URL changed to the one the
cache_entry target asks for.
"""

import hashlib
import json
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"


def put(target: str, name: str, data: bytes | str) -> None:
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    (d / name).write_bytes(data)


# --- inbound_socks: selector byte (odd: credentials), then the client bytes
def socks_connect(atyp: bytes) -> bytes:
    return b"\x05\x01\x00" + atyp


DOMAIN = b"\x03" + bytes([11]) + b"example.com" + b"\x01\xbb"
IPV4 = b"\x01" + bytes([93, 184, 216, 34]) + b"\x00\x50"
IPV6 = b"\x04" + bytes(15) + b"\x01" + b"\x00\x50"
socks = {
    "noauth-domain": b"n\x05\x01\x00" + socks_connect(DOMAIN),
    "noauth-ipv4": b"n\x05\x01\x00" + socks_connect(IPV4),
    "noauth-ipv6": b"n\x05\x02\x00\x02" + socks_connect(IPV6),
    "noauth-bind": b"n\x05\x01\x00\x05\x02\x00" + DOMAIN,
    "noauth-udp": b"n\x05\x01\x00\x05\x03\x00" + IPV4,
    "noauth-no-method": b"n\x05\x01\x02",
    "auth-good": b"a\x05\x01\x02\x01\x08fuzzuser\x08fuzzpass" + socks_connect(DOMAIN),
    "auth-bad": b"a\x05\x01\x02\x01\x03bob\x07hunter2" + socks_connect(DOMAIN),
    "auth-empty": b"a\x05\x01\x02\x01\x00\x00",
    "auth-offers-none": b"a\x05\x01\x00" + socks_connect(DOMAIN),
    "socks4": b"n\x04\x01\x00\x50\x7f\x00\x00\x01user\x00",
    "loop-zero-port": b"n\x05\x01\x00\x05\x01\x00\x01\x7f\x00\x00\x01\x00\x00",
    "http": b"nGET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "truncated": b"n\x05\x01",
}
for name, data in socks.items():
    put("inbound_socks", name, data)

# --- http_head: selector byte, then the request
heads = {
    "get-absolute": "nGET http://example.com/a?b=c HTTP/1.1\r\nHost: example.com\r\n"
    "Accept: */*\r\n\r\n",
    "get-origin-form": "nGET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "connect": "nCONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
    "connect-ipv6": "nCONNECT [::1]:443 HTTP/1.1\r\n\r\n",
    "connect-self": "nCONNECT 0.0.0.0:1 HTTP/1.1\r\n\r\n",
    "connect-no-port": "nCONNECT example.com HTTP/1.1\r\n\r\n",
    "post-body": "nPOST http://example.com/form HTTP/1.1\r\nHost: x\r\n"
    "Content-Length: 5\r\n\r\nhello",
    "chunked": "nPOST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    "5\r\nhello\r\n0\r\n\r\n",
    "expect-continue": "nPUT http://example.com/ HTTP/1.1\r\nExpect: 100-continue\r\n"
    "Content-Length: 3\r\n\r\nabc",
    "websocket": "nGET http://example.com/ws HTTP/1.1\r\nConnection: Upgrade\r\n"
    "Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    "Sec-WebSocket-Version: 13\r\n\r\n",
    "hop-by-hop": "nGET http://example.com/ HTTP/1.1\r\nConnection: keep-alive, X-Hop\r\n"
    "X-Hop: 1\r\nProxy-Connection: keep-alive\r\nTE: trailers\r\n\r\n",
    "pipelined": "nGET http://a.example/ HTTP/1.1\r\n\r\nHEAD http://b.example/ HTTP/1.1\r\n\r\n"
    "CONNECT c.example:443 HTTP/1.1\r\n\r\n",
    "http10": "nGET http://example.com/ HTTP/1.0\r\n\r\n",
    "https-absolute": "nGET https://example.com/ HTTP/1.1\r\n\r\n",
    "userinfo": "nGET http://bob:pw@example.com:8080/ HTTP/1.1\r\nHost: evil.example\r\n\r\n",
    "auth-good": "aGET http://example.com/ HTTP/1.1\r\n"
    "Proxy-Authorization: Basic ZnV6enVzZXI6ZnV6enBhc3M=\r\n\r\n",
    "auth-bad": "aCONNECT example.com:443 HTTP/1.1\r\n"
    "Proxy-Authorization: Basic Ym9iOmh1bnRlcjI=\r\n\r\n",
    "auth-none": "aGET http://example.com/ HTTP/1.1\r\n\r\n",
    "bad-version": "nGET http://example.com/ HTTP/9.9\r\n\r\n",
    "garbage": "n\x00\x01\x02\xff\r\n\r\n",
}
for name, data in heads.items():
    put("http_head", name, data)
put("http_head", "big-header", "nGET http://example.com/ HTTP/1.1\r\nX-Big: " + "a" * 70000 + "\r\n\r\n")

# --- upstream_url
for i, url in enumerate([
    "http://proxy.example:3128",
    "https://proxy.example",
    "socks5://127.0.0.1:1080",
    "socks5h://User@Proxy.Example:1080/",
    "http://[::1]:8080",
    "http://[fe80::1%25eth0]:3128",
    "http://alice@proxy.example:3128",
    "http://bob%40corp@proxy.example:3128",
    "socks://bob:hunter2secret@p:1080",
    "http://bob:hunter2secret@p:3128/x",
    "socks5://bob%3Ahunter2secret@host",
    "http://proxy.example:0",
    "http://proxy.example:65536",
    "http://:8080",
    "ftp://proxy.example",
    "http://a::1",
    "socks5://" + "u" * 256 + "@host:1080",
]):
    put("upstream_url", f"seed-{i:02}", url)

# --- host_rules: b bypass, d/p/k rules, t targets
put("host_rules", "defaults", "\n".join("b" + p for p in [
    "localhost", "*.localhost", "127.0.0.0/8", "::1", "10.0.0.0/8", "172.16.0.0/12",
    "192.168.0.0/16", "169.254.0.0/16", "fe80::/10", "fc00::/7", "*.local"])
    + "\ntexample.com:443\nt127.0.0.1:80\nt[::1]:80\ntprinter.local:631\n")
put("host_rules", "rules", "k*.ads.example\ndintranet.example\np*.example\nk10.0.0.0/8\n"
    "tx.ads.example:443\ntads.example:443\ntbadads.example:443\nt[::ffff:10.1.2.3]:80\n"
    "t0.0.0.0:80\n")
put("host_rules", "odd", "b.corp.example\nbhost_1.lan.\nb[::1]\nk::ffff:10.0.0.1\nk0.0.0.0\n"
    "ba;b\nb*.\nb\nt[::ffff:127.0.0.1]:7890\ntEXAMPLE.COM.:80\n")

# --- config
put("config", "empty", "")
put("config", "full", '''
[proxy]
listen = "127.0.0.1:7890"
mode = "proxy"
bypass = ["localhost", "*.local", "10.0.0.0/8", "::1"]

[proxy.auth]
username = "alice"
password_env = "VEIL_INBOUND_PASSWORD"

[upstreams]
strategy = "leastconn"

[upstreams.health_check]
interval_s = 30.0
url = "http://example.com/generate_204"
fall = 3
rise = 2

[[upstreams.server]]
name = "home"
url = "socks5://bob@10.0.0.2:1080"
weight = 2

[[upstreams.server]]
name = "work"
url = "https://proxy.example:443"
ca_file = "/etc/ssl/private-ca.pem"

[rules]
"*.ads.example" = "block"
"intranet.example" = "direct"

[limits]
max_connections = 10000
handshake_timeout_s = 15.0
connect_timeout_s = 10.5
shutdown_grace_s = 5.0
tunnel_idle_timeout_s = 3600.0

[dns]
servers = ["1.1.1.1:53", "[2606:4700:4700::1111]:53"]

[cache]
enabled = true
memory_mb = 64
disk_mb = 1024
max_object_mb = 8

[history]
retention_days = 30
''')
put("config", "self-upstream", '[proxy]\nlisten = "127.0.0.1:7890"\n\n[[upstreams.server]]\n'
    'name = "me"\nurl = "http://localhost:7890"\n')
put("config", "bad-numbers", "[limits]\nmax_connections = 0\nhandshake_timeout_s = nan\n")
put("config", "inbound-name", '[[upstreams.server]]\nname = "inbound:alice"\nurl = "http://p:1"\n')
put("config", "ipcheck", '[ipcheck]\nendpoints = ["https://api.ipify.org", "http://x"]\n'
    'timeout_ms = 5000\n')

# --- control_line
put("control_line", "status", '{"cmd":"status"}\n')
put("control_line", "all", "\n".join(json.dumps(c) for c in [
    {"cmd": "status"}, {"cmd": "sysproxy_on"}, {"cmd": "sysproxy_off"},
    {"cmd": "sysproxy_status"}, {"cmd": "cache_stats"}, {"cmd": "cache_clear"},
    {"cmd": "cache_purge", "url": "http://example.com/a"}, {"cmd": "ip"},
    {"cmd": "coverage"}]) + "\n")
put("control_line", "bad", 'not json\n{"cmd":"nope"}\n{"cmd":"cache_purge"}\n\r\n{}\n')
put("control_line", "crlf-no-final-newline", '{"cmd":"cache_stats"}\r\n{"cmd":"ip"}')
put("control_line", "bad-utf8", b'{"cmd":"status"}\n\xff\xfe\n{"cmd":"status"}\n')

# --- cache_entry: files as the disk tier writes them
PRIMARY = "http://fuzz.example/"
MAGIC = b"VEILHC1\n"


def entry(meta: dict, body: bytes) -> bytes:
    m = json.dumps(meta, separators=(",", ":")).encode()
    digest = hashlib.sha256(m + body).digest()
    return MAGIC + struct.pack("<IQ", len(m), len(body)) + digest + m + body


metas = [json.loads(l) for l in (HERE / "seed-cache-metas.jsonl").read_text().splitlines() if l]
for i, meta in enumerate(metas):
    old = meta["primary"]
    meta["key"] = meta["key"].replace(old, PRIMARY, 1)
    if meta["vary"]:
        # The variant a request without headers selects.
        meta["key"] = PRIMARY + "".join(f"\n{n}:" for n in meta["vary"])
    meta["primary"] = PRIMARY
    meta["policy"]["uri"] = PRIMARY
    body = b"hello from the origin\n" * (1 + i)
    put("cache_entry", f"veil-{i}", entry(meta, body))
    old_format = {k: v for k, v in meta.items() if k not in ("date", "status")}
    put("cache_entry", f"veil-{i}-old-format", entry(old_format, body))
put("cache_entry", "bad-digest", entry(metas[0], b"body")[:-1] + b"X")
put("cache_entry", "truncated", entry(metas[0], b"body")[:60])
put("cache_entry", "other-key", entry(dict(metas[0], key="http://other.example/"), b"x"))
put("cache_entry", "not-entry", b"GARBAGE!" + bytes(60))
