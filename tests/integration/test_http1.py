# SPDX-License-Identifier: Apache-2.0
"""lib/http1.c against an independent parser, h11 (Debian's python3-h11):
the same bytes, one connection's worth each, go to both, over the fuzz seed
corpus (fuzz/corpus/fuzz_lib_http1/) and over cases generated from valid
requests and responses by replacing, inserting and deleting single bytes.
Whether each message is accepted, and every parsed field (method, target,
version, status, reason, header and trailer fields, body bytes) must agree.

Where they disagree on purpose, KNOWN below names each difference: what
lib/http1.c does, what h11 0.14 does, and the RFC 9112/9110 text behind
ours; a disagreement no entry explains fails the test, and every entry must
be shown by at least one case here, so none is a blanket excuse.

Both refuse, so no entry is needed, where our refusal is a limit h11 does
not have: a chunk size or Content-Length over 2^63-1 (h11 waits for the
bytes, and the close truncates the message).

WEFT_HTTP1_CORPUS=<dir> adds the files of another corpus (for example the
one `make fuzz` grows in build-fuzz/corpus/fuzz_lib_http1)."""
import json
import os
import random
import re
import subprocess
import tempfile

import h11
import pytest

import kubefake

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SEEDS = os.path.join(REPO, "fuzz", "corpus", "fuzz_lib_http1")
METHODS = ["GET", "HEAD", "CONNECT", "GET"]  # fuzz_lib_http1.c's first-byte mapping
MAX_HEAD = 32 * 1024  # HTTP1_MAX_HEAD_DEFAULT

TCHAR = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")


# ---------------------------------------------------------------- readers

def lat(b):
    return b.decode("latin-1")


def norm_fields(fields):
    """Names compare case-insensitively; h11 lower-cases Transfer-Encoding's
    value and strips Content-Length's, so those compare the same way."""
    out = []
    for n, v in fields:
        n = n.lower()
        if n == "transfer-encoding":
            v = v.lower()
        if n == "content-length":
            v = v.strip()
        out.append([n, v])
    return out


def norm_msg(m, kind):
    keys = ["version", "headers", "body", "trailers"] + (
        ["method", "target"] if kind == "request" else ["status", "reason"])
    r = {k: m.get(k) for k in keys}
    r["headers"] = norm_fields(r["headers"] or [])
    r["trailers"] = norm_fields(r["trailers"] or [])
    return r


def h11_read(kind, data, method):
    """What h11 makes of one connection: the same shape as http1_driver's."""
    msgs, cur = [], None
    result, error = "ok", ""
    if kind == "request":
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)
    else:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)

    def ask():
        conn.send(h11.Request(method=method, target="/", headers=[
            ("Host", "x"), ("Connection", "upgrade"), ("Upgrade", "test")]))
        conn.send(h11.EndOfMessage())

    if kind == "response":
        ask()
    conn.receive_data(data)
    conn.receive_data(b"")
    try:
        while True:
            ev = conn.next_event()
            if isinstance(ev, (h11.Request, h11.Response, h11.InformationalResponse)):
                cur = {"version": lat(ev.http_version), "headers": [[lat(n), lat(v)] for n, v in ev.headers.raw_items()],
                       "body": "", "trailers": []}
                if kind == "request":
                    cur.update(method=lat(ev.method), target=lat(ev.target))
                else:
                    cur.update(status=ev.status_code, reason=lat(ev.reason))
                if isinstance(ev, h11.InformationalResponse):
                    msgs.append(cur)
                    cur = None
                    if ev.status_code == 101:
                        break
            elif isinstance(ev, h11.Data):
                cur["body"] += lat(bytes(ev.data))
            elif isinstance(ev, h11.EndOfMessage):
                cur["trailers"] = [[lat(n), lat(v)] for n, v in ev.headers.raw_items()]
                msgs.append(cur)
                cur = None
                if kind == "request":
                    conn.send(h11.Response(status_code=200, headers=[("Content-Length", "0")]))
                    if conn.our_state is h11.SWITCHED_PROTOCOL:
                        break  # a 200 to CONNECT: the rest is the tunnel
                    conn.send(h11.EndOfMessage())
                if conn.their_state is not h11.DONE or conn.our_state is not h11.DONE:
                    break  # MUST_CLOSE or SWITCHED_PROTOCOL: parsing stops, as the driver's does
                if not conn.trailing_data[0]:
                    break  # nothing more was sent: the close ends the connection cleanly
                conn.start_next_cycle()
                if kind == "response":
                    ask()
            elif ev is h11.PAUSED:
                if cur is not None and conn.their_state is h11.SWITCHED_PROTOCOL:
                    msgs.append(cur)  # a 2xx to CONNECT ends at its head
                    cur = None
                break  # CONNECT 2xx or 101: the rest is not HTTP
            elif isinstance(ev, h11.ConnectionClosed) or ev is h11.NEED_DATA:
                break
    except h11.RemoteProtocolError as e:
        result, error = "error", str(e)
    return {"messages": msgs, "result": result, "error": error, "incomplete": cur is not None}


_driver = None


def driver():
    global _driver
    if _driver is None:
        out = os.path.join(tempfile.mkdtemp(prefix="http1_driver."), "http1_driver")
        _driver = kubefake.build_c(os.path.join(HERE, "http1_driver.c"), out)
    return _driver


def c_read_all(cases, tmp, step=0):
    """http1_driver over many cases; one JSON result per case."""
    results = [None] * len(cases)
    groups = {}
    for i, (kind, method, data) in enumerate(cases):
        p = os.path.join(tmp, "c%06d" % i)
        with open(p, "wb") as f:
            f.write(data)
        groups.setdefault((kind, method), []).append((i, p))
    for (kind, method), items in groups.items():
        for start in range(0, len(items), 2000):
            part = items[start:start + 2000]
            args = [driver(), kind, str(step)] + ([method] if kind == "response" else []) + [p for _, p in part]
            out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=300).stdout
            lines = out.splitlines()
            assert len(lines) == len(part)
            for (i, _), line in zip(part, lines):
                results[i] = json.loads(line)
    return results


# ---------------------------------------------------------------- known differences

def fields_of(data):
    """(name, value) byte pairs of the first head, loosely split (for the predicates only)."""
    head = data.split(b"\r\n\r\n", 1)[0]
    out = []
    for line in head.split(b"\r\n")[1:]:
        if b":" in line:
            n, v = line.split(b":", 1)
            out.append((n.lower(), v.strip(b" \t")))
    return out


def has_field(data, name):
    return any(n == name for n, _ in fields_of(data))


# Each entry: (name, what we do and why, predicate(case, c, h)) where c and h
# are the two readings and case is (kind, method, bytes). A predicate says
# yes only when the C error (or acceptance) is the one the entry describes.
KNOWN = [
    ("cl-and-te",
     "Content-Length and Transfer-Encoding together: we refuse (HTTP1_E_CL_AND_TE, the request-smuggling "
     "defence RFC 9112 6.1 allows: 'ought to be handled as an error'); h11 lets chunked win.",
     lambda case, c, h: c["error"] == "HTTP1_E_CL_AND_TE" and h["result"] == "ok"),
    ("cl-duplicate",
     "Content-Length repeated with the same value, or as a list '5, 5': we refuse (HTTP1_E_CONTENT_LENGTH_DUP; "
     "RFC 9112 6.3 lets a recipient accept identical values but a proxy that does can be smuggled past); "
     "h11 accepts identical values.",
     lambda case, c, h: c["error"] == "HTTP1_E_CONTENT_LENGTH_DUP" and h["result"] == "ok"),
    ("te-http10",
     "Transfer-Encoding in an HTTP/1.0 message: we refuse (HTTP1_E_TE_HTTP10; RFC 9112 6.1: 'MUST treat the "
     "message as if the framing is faulty'); h11 reads it as chunked.",
     lambda case, c, h: c["error"] == "HTTP1_E_TE_HTTP10" and h["result"] == "ok"),
    ("host",
     "HTTP/1.1 request with two Host fields or a Host value that is not uri-host[:port]: we refuse "
     "(HTTP1_E_HOST; RFC 9112 3.2: 'MUST respond with a 400'); h11 checks only that Host is present.",
     lambda case, c, h: c["error"] == "HTTP1_E_HOST" and h["result"] == "ok"),
    ("target-form",
     "request-target not in the form its method needs (origin-form '/...' or absolute-form 'scheme:...', "
     "'*' only for OPTIONS, authority-form 'host:port' only and always for CONNECT, RFC 9112 3.2), or with a "
     "'#' (no fragment in any form): we refuse (HTTP1_E_TARGET); h11 takes any run of visible characters.",
     lambda case, c, h: c["error"] == "HTTP1_E_TARGET" and h["result"] == "ok"),
    ("version-major",
     "HTTP-version with a major other than 1 (HTTP/2.0, HTTP/0.9): we refuse (HTTP1_E_VERSION_UNSUPPORTED, "
     "a server answers 505, RFC 9110 6.2); h11 reads any DIGIT.DIGIT as if it were 1.x.",
     lambda case, c, h: c["error"] == "HTTP1_E_VERSION_UNSUPPORTED" and h["result"] == "ok"),
    ("version-minor",
     "HTTP/1.2 and up: the same message, but we report version 1.1 (RFC 9110 2.5: process it as the highest "
     "minor version implemented); h11 reports the digits sent.",
     lambda case, c, h: any(re.match(r"^1\.[2-9]$", m["version"] or "") for m in h["norm"])
     and agree(case[0], c, dict(h, norm=[dict(m, version="1.1" if re.match(r"^1\.[2-9]$", m["version"])
                                              else m["version"]) for m in h["norm"]]))),
    ("status-range",
     "status code outside 100-599 (000-099, 600-999): we refuse (HTTP1_E_STATUS; RFC 9110 15: values "
     "outside 100..599 are invalid, and a proxy cannot forward them); h11 takes any three digits.",
     lambda case, c, h: c["error"] == "HTTP1_E_STATUS" and h["result"] == "ok"),
    ("te-list-empty-elements",
     "Transfer-Encoding ' ,chunked, ': we accept it as chunked (RFC 9110 5.6.1.2: a recipient MUST ignore "
     "empty list elements); h11 wants the value to be exactly 'chunked'.",
     lambda case, c, h: c["result"] == "ok" and h["result"] == "error" and "Transfer-Encoding" in h["error"]
     and any(n == b"transfer-encoding" and re.match(rb"^[ \t,]*chunked[ \t,]*$", v, re.I)
             for n, v in fields_of(case[2]))),
    ("obs-fold",
     "a field line starting with SP or HTAB (obs-fold), or whitespace before the first field: we refuse "
     "(HTTP1_E_OBS_FOLD; RFC 9112 5.2 lets a server reject or unfold, and a proxy that unfolds forwards "
     "something the sender's other readers saw differently); h11 unfolds it into the previous value.",
     lambda case, c, h: c["error"] == "HTTP1_E_OBS_FOLD" and h["result"] == "ok"),
    ("value-controls",
     "control characters other than HTAB in a field value (0x01-0x08, 0x0e-0x1f, 0x7f): we refuse "
     "(HTTP1_E_FIELD_VALUE; RFC 9110 5.5: field-value is VCHAR, obs-text, SP and HTAB only); h11 refuses "
     "only NUL and whitespace other than SP/HTAB.",
     lambda case, c, h: c["error"] == "HTTP1_E_FIELD_VALUE" and h["result"] == "ok"
     and re.search(rb"[\x01-\x08\x0e-\x1f\x7f]", case[2]) is not None),
    ("reason-controls",
     "control characters other than HTAB in a reason phrase (DEL included): we refuse (HTTP1_E_REASON; RFC 9112 "
     "4: reason-phrase is HTAB, SP, VCHAR and obs-text); h11 takes them.",
     lambda case, c, h: c["error"] == "HTTP1_E_REASON" and h["result"] == "ok"
     and re.search(rb"(^|\r\n)HTTP/[^\r\n]*[\x01-\x08\x0e-\x1f\x7f]", case[2]) is not None),
    ("bare-cr-chunk-line",
     "a bare CR in a chunk-size line (inside its extensions): we refuse (HTTP1_E_BARE_CR, RFC 9112 2.2); h11 "
     "skips everything between the size and the line's end.",
     lambda case, c, h: c["error"] == "HTTP1_E_BARE_CR" and h["result"] == "ok"
     and re.search(rb"(^|\r\n)[0-9a-fA-F]+[ \t]*;[^\n]*\r[^\n]", case[2].split(b"\r\n\r\n", 1)[-1]) is not None),
    ("no-response",
     "the server closing before any byte of a response: the parser reports HTTP1_CLOSED, not an error in the "
     "bytes (lib/k8s.c words it 'connection closed before a response'); h11 raises a protocol error.",
     lambda case, c, h: case[0] == "response" and not case[2] and c["result"] == "ok" and not c["messages"]
     and h["result"] == "error"),
    ("leading-empty-lines",
     "empty lines (CRLF) before a request line, first or between keep-alive requests: we skip them (RFC 9112 "
     "2.2: a server SHOULD ignore at least one); h11 refuses ('no request line received').",
     lambda case, c, h: case[0] == "request" and c["result"] == "ok" and h["result"] == "error"
     and "no request line" in h["error"].lower()),
    ("bare-lf",
     "LF without a CR before it, as a line end of a request or of a response's chunk line: we refuse "
     "(HTTP1_E_BARE_LF; a response's head and trailer lines may end so, as busybox httpd's CGI answers do; RFC 9112 2.2 allows a lenient "
     "recipient to accept it, a strict one must not, and a proxy that does can be desynchronised from one "
     "that does not); h11 accepts it in the head, in chunk lines and in trailers.",
     lambda case, c, h: c["error"] == "HTTP1_E_BARE_LF" and h["result"] == "ok"),
    ("lf-then-fold",
     "a response's field line ended by a bare LF and followed by SP or HTAB (obs-fold): we take the line on its "
     "own, so it is refused as it stands (an empty Content-Length) or the fold is (HTTP1_E_OBS_FOLD); h11 "
     "unfolds it into the previous value.",
     lambda case, c, h: case[0] == "response" and c["result"] == "error" and h["result"] == "ok"
     and re.search(rb"[^\r\n]\n[ \t]", case[2]) is not None),
    ("chunk-ext-syntax",
     "chunk extensions: we check them against RFC 9112 7.1.1 (';' name ['=' token / quoted-string], BWS "
     "around); h11 skips anything after the size up to the CRLF, so ';=' or ';a b' pass there.",
     lambda case, c, h: c["error"] == "HTTP1_E_CHUNK_EXT" and h["result"] == "ok"),
    ("http10-keep-alive-request",
     "an HTTP/1.0 request with Connection: keep-alive: we keep the connection (RFC 9112 9.3 and its "
     "Appendix C.2.2, as curl and nginx do); h11 never keeps an HTTP/1.0 connection, so it stops after the "
     "first request where we read (and may refuse) the next one.",
     lambda case, c, h: case[0] == "request" and h["result"] == "ok" and len(c["norm"]) >= len(h["norm"])
     and h["norm"] == c["norm"][:len(h["norm"])] and h["norm"] and h["norm"][-1]["version"] == "1.0"
     and any(n == "connection" and "keep-alive" in v.lower() for n, v in h["norm"][-1]["headers"])
     and (len(c["norm"]) > len(h["norm"]) or c["result"] == "error")),
]


def explain(case, c, h):
    """The KNOWN entry that accounts for the two readings disagreeing, or None."""
    for name, _, pred in KNOWN:
        try:
            if pred(case, c, h):
                return name
        except (KeyError, IndexError, TypeError, ValueError):
            continue
    return None


def agree(kind, c, h):
    """Same acceptance and, for every message both completed, the same fields."""
    n = min(len(c["norm"]), len(h["norm"]))
    if c["norm"][:n] != h["norm"][:n]:
        return False
    if c["result"] != h["result"]:
        return False
    if c["result"] == "ok" and len(c["norm"]) != len(h["norm"]):
        return False
    return True


def compare(cases, tmp):
    cs = c_read_all(cases, tmp)
    seen, unexplained = {}, []
    for case, c in zip(cases, cs):
        kind, method, data = case
        h = h11_read(kind, data, method)
        c["norm"] = [norm_msg(m, kind) for m in c["messages"] if not m.get("incomplete")]
        h["norm"] = [norm_msg(m, kind) for m in h["messages"]]
        if c["result"] == "ok" and c["messages"] and c["messages"][-1].get("incomplete"):
            c["result"] = "error"  # defensive: the driver reports an error for these
        if agree(kind, c, h):
            seen.setdefault("agree", 0)
            seen["agree"] += 1
            continue
        why = explain(case, c, h)
        if why is None:
            unexplained.append((case, c, h))
        else:
            seen[why] = seen.get(why, 0) + 1
    return seen, unexplained


def show(unexplained, limit=8):
    lines = []
    for (kind, method, data), c, h in unexplained[:limit]:
        lines.append("%s %s %r\n  C:   %s %s %s\n  h11: %s %s %s" % (
            kind, method, data[:300], c["result"], c["error"], json.dumps(c["norm"])[:300],
            h["result"], h["error"], json.dumps(h["norm"])[:300]))
    return "\n".join(lines) + ("\n... and %d more" % (len(unexplained) - limit) if len(unexplained) > limit else "")


# ---------------------------------------------------------------- cases

def corpus_cases(d):
    out = []
    for name in sorted(os.listdir(d)):
        with open(os.path.join(d, name), "rb") as f:
            raw = f.read()
        if not raw:
            continue
        kind = "response" if raw[0] & 0x80 else "request"
        out.append((kind, METHODS[(raw[0] >> 5) & 3], raw[1:]))
    return out


REQ = [
    b"GET /a?b=c HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    b"POST /p HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
    b"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhello\r\n0\r\nT: v\r\n\r\n",
    b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
]
RESP = [
    ("GET", b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello"),
    ("GET", b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    ("GET", b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\nno"),
    ("GET", b"HTTP/1.1 200 OK\r\n\r\nuntil close"),
    ("HEAD", b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n"),
]
# Named cases, each showing one thing (several a KNOWN difference).
NAMED = [
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\nabc"),
    ("request", "GET", b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
    ("request", "GET", b"GET a/b HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"GET /a#f HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"GET * HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.2\r\nHost: a\r\n\r\n"),
    ("response", "GET", b"HTTP/1.1 600 Odd\r\nContent-Length: 0\r\n\r\n"),
    ("response", "GET", b"HTTP/1.1 099 Low\r\nContent-Length: 0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ,chunked, \r\n\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("request", "GET", b"\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\nHost: a\n\n"),
    ("response", "GET", b"HTTP/1.1 200 OK\nContent-Type: text/plain\nContent-Length: 2\n\nhi"),
    ("response", "GET", b"HTTP/1.1 404 Not Found\r\nContent-Length:\n 2\r\n\r\nno"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;=x\r\nabc\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n8000000000000000\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 9223372036854775808\r\n\r\n"),
    ("response", "GET", b"HTTP/1.1 200 \xe9t\xe9\r\nContent-Length: 0\r\n\r\n"),
    ("response", "GET", b"HTTP/1.1 200 O\x7fK\r\nContent-Length: 0\r\n\r\n"),
    ("response", "GET", b""),
    ("response", "GET", b"HTTP/1.1 100 Continue\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x7f\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /2 HTTP/1.0\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nX-Partial: v"),
    # Agreed refusals: the smuggling and strictness cases both parsers refuse.
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nX[: 1\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n"),
    ("request", "GET", b"GET / HTTP/1.1\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -3\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
    ("request", "GET", b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nabc"),
    ("response", "GET", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nabc"),
    ("response", "CONNECT", b"HTTP/1.1 200 OK\r\n\r\n\x16\x03\x01tunnel"),
    ("response", "GET", b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\nframes"),
    ("response", "GET", b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\n\r\n"),
    ("response", "GET", b"HTTP/1.0 200 OK\r\n\r\nold"),
]
BYTES = [b" ", b"\t", b"\r", b"\n", b"\x00", b"\x7f", b"\x80", b":", b",", b";", b"\"", b"#", b"A", b"0", b"\r\n"]


def mutations(data, rng, count):
    """count single-byte replacements, insertions and deletions, spread over the input."""
    out = set()
    for _ in range(count * 3):
        if len(out) >= count:
            break
        i = rng.randrange(len(data))
        b = rng.choice(BYTES)
        op = rng.randrange(3)
        if op == 0:
            m = data[:i] + b + data[i + 1:]
        elif op == 1:
            m = data[:i] + b + data[i:]
        else:
            m = data[:i] + data[i + 1:]
        if m != data:
            out.add(m)
    return sorted(out)


def generated_cases():
    rng = random.Random(9112)
    out = list(NAMED)
    for t in REQ:
        out.append(("request", "GET", t))
        out += [("request", "GET", m) for m in mutations(t, rng, 400)]
    for method, t in RESP:
        out.append(("response", method, t))
        out += [("response", method, m) for m in mutations(t, rng, 400)]
    return out


# ---------------------------------------------------------------- tests

def test_seed_corpus_agrees_with_h11(tmp_path):
    cases = corpus_cases(SEEDS)
    assert len(cases) >= 40
    seen, unexplained = compare(cases, str(tmp_path))
    assert not unexplained, "lib/http1 and h11 disagree, and KNOWN does not say why:\n" + show(unexplained)
    assert seen.get("agree", 0) >= len(cases) // 2, seen


def test_generated_cases_agree_with_h11(tmp_path):
    cases = generated_cases()
    seen, unexplained = compare(cases, str(tmp_path))
    assert not unexplained, "lib/http1 and h11 disagree, and KNOWN does not say why:\n" + show(unexplained)
    # Most mutants are judged the same way; the rest are the documented differences.
    assert seen["agree"] > 0.8 * len(cases), seen


def test_every_known_difference_is_shown():
    """Each KNOWN entry explains at least one named case: none is there by habit."""
    with tempfile.TemporaryDirectory() as tmp:
        seen, unexplained = compare(NAMED, tmp)
    assert not unexplained, show(unexplained)
    never = [name for name, _, pred in KNOWN if name not in seen]
    assert not never, "KNOWN entries no case shows: %s (seen %s)" % (never, seen)


def test_split_feeds_read_the_same(tmp_path):
    """The driver fed a byte at a time reads every case as it does whole."""
    cases = NAMED + corpus_cases(SEEDS)
    whole = c_read_all(cases, str(tmp_path))
    for step in (1, 7):
        split = c_read_all(cases, str(tmp_path), step=step)
        for case, a, b in zip(cases, whole, split):
            assert a == b, (step, case)


@pytest.mark.skipif(not os.environ.get("WEFT_HTTP1_CORPUS"), reason="WEFT_HTTP1_CORPUS not set")
def test_extra_corpus_agrees_with_h11(tmp_path):
    cases = corpus_cases(os.environ["WEFT_HTTP1_CORPUS"])[:20000]
    seen, unexplained = compare(cases, str(tmp_path))
    assert not unexplained, "lib/http1 and h11 disagree, and KNOWN does not say why:\n" + show(unexplained)
