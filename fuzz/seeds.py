#!/usr/bin/env python3
"""Write the seed corpora into corpus/frontend/ and corpus/auth/.

A `frontend` input is two configuration bytes (see harness/frontend.rs: read
and write chunk sizes, scanner limits, inspected and intercepted tags)
followed by what a client sends: startup packet(s), then tagged messages.
An `auth` input is one configuration byte (harness/auth.rs: method,
credential, read size) followed by the client's authentication messages.
"""
import os
import struct

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def packet(code, body=b""):
    return struct.pack("!ii", 8 + len(body), code) + body


def startup(params, minor=0):
    body = b"".join(k.encode() + b"\0" + v.encode() + b"\0" for k, v in params) + b"\0"
    return packet((3 << 16) | minor, body)


SSL = packet(80877103)
GSS = packet(80877104)


def cancel(pid, secret):
    return packet(80877102, struct.pack("!ii", pid, secret))


def msg(tag, body=b""):
    return tag + struct.pack("!i", 4 + len(body)) + body


def cstr(s):
    return s.encode() + b"\0"


def query(sql):
    return msg(b"Q", cstr(sql))


def parse(name, sql, oids=()):
    return msg(b"P", cstr(name) + cstr(sql) + struct.pack("!h", len(oids)) + b"".join(struct.pack("!I", o) for o in oids))


def bind(portal, stmt, formats, params, results):
    body = cstr(portal) + cstr(stmt) + struct.pack("!h", len(formats))
    body += b"".join(struct.pack("!h", f) for f in formats)
    body += struct.pack("!h", len(params))
    for p in params:
        body += struct.pack("!i", -1) if p is None else struct.pack("!i", len(p)) + p
    body += struct.pack("!h", len(results)) + b"".join(struct.pack("!h", f) for f in results)
    return msg(b"B", body)


def describe(kind, name):
    return msg(b"D", kind + cstr(name))


def execute(portal, rows):
    return msg(b"E", cstr(portal) + struct.pack("!i", rows))


SYNC = msg(b"S")
FLUSH = msg(b"H")
TERMINATE = msg(b"X")
USER = [("user", "bob"), ("database", "app"), ("application_name", "psql")]

extended = (
    parse("s1", "select $1::int, $2::text", (23, 25))
    + bind("", "s1", [1, 0], [struct.pack("!i", 7), None], [1])
    + describe(b"P", "")
    + execute("", 0)
    + msg(b"C", b"S" + cstr("s1"))
    + SYNC
)

SEEDS = {
    "startup_query": b"\x00\x00" + startup(USER) + query("select 1") + TERMINATE,
    "ssl_then_startup_extended": b"\x05\x08" + SSL + startup(USER) + extended + TERMINATE,
    "gss_ssl_startup_options": b"\x02\x19"
    + GSS
    + SSL
    + startup([("user", "u"), ("_pq_.compression", "on"), ("options", "-c x=y")], minor=2)
    + query("begin")
    + FLUSH,
    "cancel": b"\x07\x00" + cancel(1234, -99),
    "password_sasl": b"\x06\x36"
    + startup([("user", "scram")])
    + msg(b"p", cstr("SCRAM-SHA-256") + struct.pack("!i", 9) + b"n,,n=,r=x")
    + msg(b"p", cstr("secret")),
    "copy_stream": b"\x21\x02"
    + startup(USER)
    + query("copy t from stdin")
    + msg(b"d", b"1\tone\n" * 20)
    + msg(b"d", b"2\ttwo\n")
    + msg(b"c")
    + msg(b"f", cstr("client gave up"))
    + msg(b"F", struct.pack("!I", 1598) + b"\x00\x00\x00\x00\x00\x00"),
    "frames_only_small_limits": b"\xc3\x0b" + query("select 2") + extended + query("x" * 80),
    "bad_startup_length": b"\x00\x00" + struct.pack("!ii", 4, 196608) + query("select 3"),
    "bad_protocol": b"\x00\x00" + packet(2 << 16, b"user\0u\0\0"),
    "bad_tag_after_startup": b"\x40\x00" + startup(USER) + query("select 4") + msg(b"!", b"x"),
    "bad_length": b"\x01\x00" + startup(USER) + b"Q\x00\x00\x00\x02",
    "truncated_bind": b"\x02\x28" + startup(USER) + bind("p", "s", [1], [b"abc"], [])[:-3],
}

def sasl_initial(mechanism, data):
    return msg(b"p", cstr(mechanism) + struct.pack("!i", len(data)) + data)


# Method: 0 trust, 1 md5, 2 scram-sha-256, 3 upstream (cleartext);
# credential: 0 password, 1 md5 hash, 2 SCRAM verifier, 3 unknown user.
def auth_config(method, credential, chunk=7):
    return bytes([method | credential << 2 | chunk << 4])


AUTH_SEEDS = {
    "cleartext": auth_config(3, 0) + msg(b"p", cstr("secret")),
    "md5": auth_config(1, 1, 0) + msg(b"p", cstr("md5" + "0123456789abcdef" * 2)),
    "md5_unknown_user": auth_config(1, 3) + msg(b"p", cstr("md5" + "f" * 32)),
    "md5_to_scram_user": auth_config(1, 2) + sasl_initial("SCRAM-SHA-256", b"n,,n=,r=rOprNGfwEbeRWgbNEkqO"),
    "scram": auth_config(2, 0, 3)
    + sasl_initial("SCRAM-SHA-256", b"n,,n=,r=rOprNGfwEbeRWgbNEkqO")
    + msg(b"p", b"c=biws,r=rOprNGfwEbeRWgbNEkqOnonce,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="),
    "scram_unknown_user": auth_config(2, 3, 5) + sasl_initial("SCRAM-SHA-256", b"n,,n=bob,r=abc"),
    "scram_plus_refused": auth_config(2, 2, 1) + sasl_initial("SCRAM-SHA-256-PLUS", b"p=tls-server-end-point,,n=,r=abc"),
    "wrong_tag": auth_config(3, 0) + msg(b"Q", cstr("select 1")),
}

for target, seeds in (("frontend", SEEDS), ("auth", AUTH_SEEDS)):
    out = os.path.join(CORPUS, target)
    os.makedirs(out, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(out, name), "wb") as f:
            f.write(data)
    print(f"wrote {len(seeds)} seeds to {out}")
