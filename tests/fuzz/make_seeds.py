#!/usr/bin/python3
"""Regenerate the seed corpora (committed; run by hand when the formats grow):
queries a client may send, replies an upstream may send, configuration files."""
import os
import struct

import dns.edns
import dns.flags
import dns.message
import dns.rcode
import dns.rrset

HERE = os.path.dirname(os.path.abspath(__file__))


def write(kind, name, data):
    d = os.path.join(HERE, "corpus", kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def hdr(qid=1, flags=0x0100, qd=1, an=0, ns=0, ar=0):
    return struct.pack("!HHHHHH", qid, flags, qd, an, ns, ar)


Q = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01"
OPT = b"\x00\x00\x29\x04\xd0\x00\x00\x00\x00\x00\x00"

# ---- queries ----
write("query", "plain-a", dns.message.make_query("www.example.com", "A", use_edns=False).to_wire())
write("query", "edns-do-aaaa", dns.message.make_query("Mixed.Example.COM", "AAAA", want_dnssec=True).to_wire())
ecs = dns.edns.ECSOption("192.0.2.0", 24)
write("query", "edns-ecs", dns.message.make_query("example.com", "A", use_edns=0, options=[ecs]).to_wire())
write("query", "edns-v1", hdr(ar=1) + Q + b"\x00\x00\x29\x04\xd0\x00\x01\x00\x00\x00\x00")
write("query", "two-questions", hdr(qd=2) + Q + Q)
write("query", "no-question", hdr(qd=0))
write("query", "tsig", hdr(ar=1) + Q + b"\x03key\x00\x00\xfa\x00\xff" + b"\x00" * 6)
write("query", "two-opt", hdr(ar=2) + Q + OPT + OPT)
write("query", "notify", hdr(flags=0x2000) + Q)
write("query", "response", hdr(flags=0x8180) + Q)
write("query", "short", b"\x00\x01\x00")
write("query", "pointer-qname", hdr() + b"\xc0\x0c\x00\x01\x00\x01")
write("query", "dotted-label", hdr() + b"\x03a.b\x07example\x00\x00\x01\x00\x01")
write("query", "axfr", dns.message.make_query("example.com", "AXFR").to_wire())
write("query", "long-name", hdr() + (b"\x3f" + b"a" * 63) * 3 + b"\x3d" + b"b" * 61 + b"\x00\x00\x01\x00\x01")

# ---- replies (the fuzz target reads the question from the reply itself) ----
q = dns.message.make_query("www.example.com", "A")
r = dns.message.make_response(q)
r.answer.append(dns.rrset.from_text("www.example.com.", 300, "IN", "CNAME", "cdn.example.net."))
r.answer.append(dns.rrset.from_text("cdn.example.net.", 60, "IN", "A", "192.0.2.1", "192.0.2.2"))
write("reply", "cname-chain", r.to_wire())
r = dns.message.make_response(q)
r.set_rcode(dns.rcode.NXDOMAIN)
r.authority.append(dns.rrset.from_text("example.com.", 300, "IN", "SOA",
                                       "ns.example.com. host.example.com. 1 7200 900 1209600 300"))
write("reply", "nxdomain-soa", r.to_wire())
r = dns.message.make_response(q)
r.flags |= dns.flags.TC
write("reply", "truncated", r.to_wire())
r = dns.message.make_response(dns.message.make_query("www.example.com", "A", use_edns=0))
r.use_edns(0, 0, 1232, options=[dns.edns.EDEOption(dns.edns.EDECode.BLOCKED, "test")])
r.set_rcode(dns.rcode.SERVFAIL)
write("reply", "servfail-ede", r.to_wire())
big = dns.message.make_response(q)
big.answer.append(dns.rrset.from_text("www.example.com.", 60, "IN", "A",
                                      *["192.0.2.%d" % i for i in range(1, 60)]))
write("reply", "many-records", big.to_wire())
good = dns.message.make_response(q)
good.answer.append(dns.rrset.from_text("www.example.com.", 60, "IN", "A", "192.0.2.1"))
w = good.to_wire()
write("reply", "self-pointer", w[:29] + struct.pack("!H", 0xC000 | 29) + w[31:])
write("reply", "rdlength-overrun", w[:-6] + b"\x01\x00" + w[-4:])
write("reply", "ancount-too-big", w[:6] + b"\x00\x05" + w[8:])
# Hostile upstreams (tests/e2e/test_hostile_upstream.py): options, OPTs, trailing bytes, CNAMEs.
opt = lambda options: b"\x00" + struct.pack("!HHIH", 41, 1232, 0, len(options)) + options
with_ar = lambda extra, n: w[:10] + struct.pack("!H", n) + w[12:] + extra
write("reply", "hundreds-of-options",
      with_ar(opt(b"".join(struct.pack("!HH", 65001 + i, 0) for i in range(300))), 1))
write("reply", "option-overrun", with_ar(opt(struct.pack("!HH", 10, 8) + b"\x00" * 4), 1))
write("reply", "two-opt", with_ar(opt(b"") + opt(b""), 2))
write("reply", "trailing-bytes", w + b"\xde\xad\xbe\xef")
# A CNAME whose target is a forward pointer to the next record's owner (ldns follows it).
fwd = w[:6] + b"\x00\x02" + w[8:33]  # header (2 answers) and question
fwd += b"\xc0\x0c" + struct.pack("!HHIH", 5, 1, 60, 2) + struct.pack("!H", 0xC000 | (len(fwd) + 14))
fwd += b"\x03cdn\x07example\x03net\x00" + struct.pack("!HHIH", 1, 1, 60, 4) + bytes([192, 0, 2, 1])
write("reply", "cname-forward-pointer", fwd)

# ---- configs ----
write("config", "full", """# every section
[server]
listen = 127.0.0.1:8053, [::1]:8053
allow = 127.0.0.0/8, 192.168.0.0/16, fc00::/7
blocking_mode = nxdomain
block_ttl = 300
threads = 2
tcp_idle_timeout_ms = 10000
tcp_max_connections = 256
[upstream]
servers = 9.9.9.9, [2620:fe::fe]:53
timeout_ms = 1500
[lists]
paths = lists
vendors = all
strict = no
[log]
db = telesink.db
retention_days = 90
log_allowed = yes
anonymize_clients = no
trusted_forwarders = 192.168.1.2
[clients]
192.168.1.23 = redmi-note-8
aa:bb:cc:dd:ee:ff = tv
""")
write("config", "crlf-bom", "\ufeff[server]\r\nlisten = 127.0.0.1:53 ; comment\r\n")
write("config", "errors", "[server]\nlisten = 300.1.1.1\n[bogus]\nkey\n")
write("config", "dot-upstream", "[upstream]\nservers = tls://9.9.9.9#dns.quad9.net, 192.0.2.1, "
      "tls://[2620:fe::fe]:853, TLS://1.1.1.1#1.1.1.1\ntls_ca =\n")
