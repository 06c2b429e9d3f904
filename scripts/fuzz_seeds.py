#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets (fuzz/fuzz_targets/*.rs).

Seeds come from the hex test vectors in docs/protocol.md and from valid
protobuf messages encoded here by hand (the wire format is small: varints
and length-delimited fields), so that the generator needs neither cargo nor
the gateway. Each seed file is named after its content hash; the input
layouts are documented at the top of each fuzz target.

Usage: scripts/fuzz_seeds.py OUT_DIR   (writes OUT_DIR/<target>/<sha1>)
"""

import base64
import hashlib
import hmac
import json
import os
import re
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Must match fuzz_targets/protobuf_handlers.rs.
SECRET = b"fuzz-secret-0123456789abcdef"
ACCOUNT = "ACC-0001"


# --- CRC-32C (Castagnoli, reflected 0x82F63B78), bit-wise -------------------
def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def frame(msg_type: int, corr: int, body: bytes, flags: int = 0) -> bytes:
    header = b"HT" + struct.pack(">BBHHQII", 1, flags, msg_type, 0, corr, len(body), crc32c(body))
    return header + body


# --- protobuf ----------------------------------------------------------------
def varint(n: int) -> bytes:
    if n < 0:
        n += 1 << 64
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def f_varint(num: int, value: int) -> bytes:
    return varint(num << 3) + varint(value) if value else b""


def f_bytes(num: int, value) -> bytes:
    if isinstance(value, str):
        value = value.encode()
    return varint((num << 3) | 2) + varint(len(value)) + value if value else b""


def login(account_id="", token=""):
    return f_bytes(1, account_id) + f_bytes(2, token)


def place(request_id="", account_id="", symbol="", side=0, order_type=0, price=0, quantity=0):
    return (f_bytes(1, request_id) + f_bytes(2, account_id) + f_bytes(3, symbol)
            + f_varint(4, side) + f_varint(5, order_type) + f_varint(6, price)
            + f_varint(7, quantity))


def cancel(request_id="", order_id=""):
    return f_bytes(1, request_id) + f_bytes(2, order_id)


def query(order_id=""):
    return f_bytes(1, order_id)


def heartbeat(nanos=0):
    return f_varint(1, nanos)


# --- HS256 JWT ---------------------------------------------------------------
def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(claims: dict, secret: bytes = SECRET, alg: str = "HS256") -> str:
    head = b64url(json.dumps({"alg": alg, "typ": "JWT"}, separators=(",", ":")).encode())
    body = b64url(json.dumps(claims, separators=(",", ":")).encode())
    digest = {"HS256": hashlib.sha256, "HS384": hashlib.sha384}[alg]
    sig = b64url(hmac.new(secret, f"{head}.{body}".encode(), digest).digest())
    return f"{head}.{body}.{sig}"


FAR_FUTURE = 4102444800  # 2100-01-01


# --- docs/protocol.md vectors ------------------------------------------------
def protocol_vectors():
    text = open(os.path.join(ROOT, "docs", "protocol.md"), encoding="utf-8").read()
    section = text.split("## Test vectors", 1)[1].split("\n## ", 1)[0]
    vectors = []
    for block in re.findall(r"```\n(.*?)```", section, re.S):
        header = re.search(r"header\s+((?:[0-9a-f]{2} ?)+)", block)
        body = re.search(r"body\s+((?:[0-9a-f]{2} ?)+)", block)
        raw = bytes.fromhex(header.group(1).replace(" ", ""))
        if body:
            raw += bytes.fromhex(body.group(1).replace(" ", ""))
        vectors.append(raw)
    assert len(vectors) >= 7, f"expected the 7 vectors of docs/protocol.md, found {len(vectors)}"
    for v in vectors:  # the script and the doc agree on the CRC
        assert struct.unpack(">I", v[20:24])[0] == crc32c(v[24:]), v.hex()
    return vectors


# --- seeds per target --------------------------------------------------------
def frame_decoder_seeds():
    """Control byte, split points, then the stream (frame_decoder.rs)."""
    vectors = protocol_vectors()
    requests = [v for v in vectors if v[3] == 0]
    streams = list(vectors)
    streams.append(b"".join(requests))
    streams.append(frame(2, 9, place("r-2", "", "000660", 2, 1, 1, 1)) + frame(5, 10, heartbeat(5)))
    streams.append(frame(3, 11, cancel("c-1", "01890a5d-ac96-774b-bcce-b302099a8057")))
    streams.append(frame(99, 12, b"\x00\x01"))              # unknown type passes the codec
    streams.append(frame(5, 13, b"", flags=1))              # RESPONSE flag on a request
    bad_crc = bytearray(vectors[0]); bad_crc[-1] ^= 0xFF
    streams.append(bytes(bad_crc))
    streams.append(vectors[0][:-1])                         # partial frame
    streams.append(vectors[0][:10])                         # partial header
    seeds = []
    for s in streams:
        seeds.append(b"\x00" + s)                           # default max, no split
    # Split points: 3 cuts (control = 3 << 3), max_body_len 16 (index 3).
    both = b"".join(requests)
    seeds.append(bytes([(3 << 3) | 0]) + struct.pack(">HHH", 1, 24, 30) + both)
    seeds.append(bytes([(2 << 3) | 3]) + struct.pack(">HH", 5, 25) + vectors[4])
    # body_len above the limit, announced by the header alone (max 16).
    big = frame(2, 14, place("r-" + "x" * 40, "", "005930", 1, 1, 70000, 10))
    seeds.append(bytes([3]) + big[:24])
    seeds.append(bytes([1]) + vectors[0])                   # max_body_len 0
    return seeds


def protobuf_handlers_seeds():
    """msg_type, session bit, body (protobuf_handlers.rs)."""
    valid = jwt({"sub": ACCOUNT, "exp": FAR_FUTURE})
    cases = [
        (1, 0, login(ACCOUNT, valid)),
        (1, 0, login("", valid)),
        (1, 0, login("ACC-0002", valid)),                   # account mismatch
        (1, 0, login(ACCOUNT, jwt({"sub": ACCOUNT, "exp": 1}))),          # expired
        (1, 0, login(ACCOUNT, jwt({"sub": ACCOUNT, "exp": FAR_FUTURE}, b"other"))),
        (1, 0, login(ACCOUNT, jwt({"sub": ACCOUNT, "exp": FAR_FUTURE}, alg="HS384"))),
        (1, 0, login(ACCOUNT, jwt({"exp": FAR_FUTURE}))),   # no sub
        (1, 0, login(ACCOUNT, jwt({"sub": "", "exp": FAR_FUTURE}))),
        (1, 0, login(ACCOUNT, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJBQ0MtMDAwMSJ9.")),
        (1, 0, login("ACC-1", "tok")),
        (2, 1, place("r-1", "", "005930", 1, 1, 70000, 10)),
        (2, 1, place("r-2", ACCOUNT, "000660", 2, 1, 1, 1)),
        (2, 0, place("r-1", "", "005930", 1, 1, 70000, 10)),
        (2, 1, place("r-3", "ACC-0002", "005930", 1, 1, 70000, 10)),
        (2, 1, place("r-4", "", "005930", 1, 1, 2**62, 4)),  # overflow
        (2, 1, place("", "", "abc", 3, 0, -1, 0)),
        (2, 1, place("~" * 64, "", "Z" * 12, 2, 1, 9, 9)),
        (3, 1, cancel("c-1", "01890a5d-ac96-774b-bcce-b302099a8057")),
        (3, 0, cancel("c-2", "o")),
        (3, 1, cancel("", "")),
        (4, 1, query("01890a5d-ac96-774b-bcce-b302099a8057")),
        (4, 0, query("")),
        (5, 0, heartbeat(1)),
        (5, 1, heartbeat(2**63)),
        (255, 1, b"\x08\x0c\x12\x03bad"),
        (0, 0, b""),
        (6, 1, b"\x08\x01"),
        (2, 1, b"\xff\xff"),                                # not protobuf
    ]
    return [bytes([t, s]) + body for t, s, body in cases]


def config_file_seeds():
    text = open(os.path.join(ROOT, "deploy", "k8s", "config.yaml"), encoding="utf-8").read()
    embedded = text.split("gateway.toml: |\n", 1)[1].split("---", 1)[0]
    deployed = "\n".join(line[4:] for line in embedded.splitlines())
    full = """listen = "127.0.0.1:7070"
backends = ["http://10.0.0.1:50051", "http://10.0.0.2:50051"]
request_timeout_ms = 50
max_in_flight_per_connection = 256
max_connections = 20000
max_failed_logins = 5
login_failures_per_source = 20
login_failure_window_secs = 60
max_login_sources = 100000
tls_handshake_timeout_ms = 10000

[resilience]
max_retries = 1
retry_backoff_ms = 10
retry_budget_ratio = 0.1
retry_budget_min_per_sec = 10
retry_budget_window_ms = 10000
hedging = true
hedge_min_delay_ms = 1
hedge_max_delay_ms = 100
hedge_quantile = 0.95
latency_window_ms = 10000
breaker_window = 50
breaker_failure_ratio = 0.2
breaker_delay_ms = 30000
breaker_max_delay_ms = 300000
breaker_half_open_probes = 3
max_in_flight_per_backend = 128
max_in_flight_global = 10000
account_rate_per_sec = 100
account_burst = 200
health_interval_ms = 1000
health_timeout_ms = 500
health_unhealthy_threshold = 3
outlier_consecutive_failures = 5
outlier_ejection_ms = 30000
ewma_alpha = 0.3
ewma_half_life_ms = 10000
"""
    # Boundary values: each numeric key alone at the largest integer TOML
    # holds (i64::MAX) or at zero, the others valid; then all at once.
    def extreme(value, only=None):
        out = []
        for line in full.splitlines():
            key, sep, v = line.partition(" = ")
            if sep and re.fullmatch(r"[0-9.]+", v) and only in (None, key):
                v = value if "." not in v else ("1e308" if value != "0" else "0.0")
            out.append(key + sep + v if sep else line)
        return "\n".join(out) + "\n"
    keys = [line.partition(" = ")[0] for line in full.splitlines()
            if re.fullmatch(r"[a-z_]+ = [0-9.]+", line)]
    singles = [extreme(v, k) for k in keys for v in ("9223372036854775807", "0")]
    return [s.encode() for s in [
        deployed,
        full,
        extreme("9223372036854775807"),
        extreme("0"),
        "",
        'backends = ["http://127.0.0.1:1"]\n[resilience]\nhedging = false\n',
        "backend = []\n",                                   # typo: refused
        "max_connections = 0\n",
        "[resilience]\nretry_budget_window_ms = 10\n",
    ] + singles]


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    out = sys.argv[1]
    targets = {
        "frame_decoder": frame_decoder_seeds(),
        "protobuf_handlers": protobuf_handlers_seeds(),
        "config_file": config_file_seeds(),
    }
    for target, seeds in targets.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for seed in seeds:
            with open(os.path.join(d, hashlib.sha1(seed).hexdigest()), "wb") as f:
                f.write(seed)
        print(f"{target}: {len(seeds)} seeds in {d}")


if __name__ == "__main__":
    main()
