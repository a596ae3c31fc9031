#include "dnsmsg.h"

#include "wire.h"

#include <ldns/ldns.h>
#include <stdio.h>
#include <string.h>

/* Header flag bits (the 16-bit word after the ID). */
#define F_QR 0x8000u
#define F_AA 0x0400u
#define F_TC 0x0200u
#define F_RD 0x0100u
#define F_RA 0x0080u
#define F_Z  0x0040u
#define F_AD 0x0020u
#define F_CD 0x0010u

#define OPT_DO       0x8000u
#define EDNS_OPT_EDE 15

/*
 * Read the name at pos: in wire form into out (when not NULL, at most 255 bytes), following
 * compression pointers only when `follow` — and then only backwards (so it ends) and never into
 * the header we rewrite per client. *end is set just past the name as it stands at pos.
 * Returns the name's length, or 0 when it runs past the end, is longer than 255 bytes, or uses
 * a pointer it may not or an extended label type.
 */
static size_t read_name(const uint8_t *pkt, size_t len, size_t pos, bool follow, uint8_t *out,
                        size_t *end)
{
    size_t n = 0;
    bool jumped = false;
    for (int guard = 0; guard < 256; guard++) {
        if (pos >= len)
            return 0;
        uint8_t l = pkt[pos];
        if ((l & 0xC0) == 0xC0) {
            if (!follow || pos + 2 > len)
                return 0;
            size_t target = (size_t)(rd16(pkt + pos) & 0x3FFF);
            if (target >= pos || target < DNS_HEADER_LEN)
                return 0;
            if (!jumped)
                *end = pos + 2;
            jumped = true;
            pos = target;
            continue;
        }
        if (l & 0xC0 || n + 1u + l > DNS_MAX_NAME || pos + 1u + l > len)
            return 0;
        if (out)
            memcpy(out + n, pkt + pos, 1u + l);
        n += 1u + l;
        pos += 1u + l;
        if (l == 0) {
            if (!jumped)
                *end = pos;
            return n;
        }
    }
    return 0;
}

/* Advance *pos past a possibly compressed name. Returns 0, or -1 when it is malformed. */
static int skip_name(const uint8_t *pkt, size_t len, size_t *pos)
{
    return read_name(pkt, len, *pos, true, NULL, pos) > 0 ? 0 : -1;
}

/*
 * Read the one additional record of a query at pos: an OPT fills q's EDNS fields. Returns the
 * offset after it, or 0 when it is not a well-formed OPT (TSIG and anything else included).
 */
static size_t read_opt(const uint8_t *pkt, size_t len, size_t pos, struct dnsmsg_query *q)
{
    if (pos >= len || pkt[pos] != 0 || pos + 11 > len)
        return 0;
    uint16_t type = rd16(pkt + pos + 1);
    uint16_t cls = rd16(pkt + pos + 3);
    uint32_t ttl = rd32(pkt + pos + 5);
    uint16_t rdlen = rd16(pkt + pos + 9);
    size_t rdata = pos + 11;
    if (type != TYPE_OPT || rdata + rdlen > len)
        return 0;
    /* Options must tile the RDATA exactly. */
    for (size_t o = rdata; o < rdata + rdlen;) {
        if (o + 4 > rdata + rdlen || o + 4 + rd16(pkt + o + 2) > rdata + rdlen)
            return 0;
        o += 4u + rd16(pkt + o + 2);
    }
    q->edns = true;
    q->edns_version = (uint8_t)(ttl >> 16);
    q->do_bit = ttl & OPT_DO;
    q->udp_size = cls < 512 ? 512 : cls;
    q->opt_rdata = (uint16_t)rdata;
    q->opt_rdlen = rdlen;
    return rdata + rdlen;
}

enum dnsmsg_verdict dnsmsg_parse_query(const uint8_t *pkt, size_t len, struct dnsmsg_query *q)
{
    q->has_question = false;
    q->edns = false;
    q->edns_version = 0;
    q->do_bit = false;
    q->udp_size = 512;
    q->opt_rdata = q->opt_rdlen = 0;
    q->qname_len = 0;
    if (len < DNS_HEADER_LEN)
        return DNSMSG_DROP;

    uint16_t flags = rd16(pkt + 2);
    q->id = rd16(pkt);
    q->opcode = (uint8_t)((flags >> 11) & 0x0F);
    q->rd = flags & F_RD;
    q->cd = flags & F_CD;
    if (flags & F_QR)
        return DNSMSG_DROP;

    uint16_t qd = rd16(pkt + 4), an = rd16(pkt + 6), ns = rd16(pkt + 8), ar = rd16(pkt + 10);
    size_t pos = DNS_HEADER_LEN;
    if (qd == 1) {
        size_t end, n = read_name(pkt, len, pos, false, q->qname, &end);
        if (n > 0 && pos + n + 4 <= len) {
            q->qname_len = (uint8_t)n;
            pos += n;
            q->qtype = rd16(pkt + pos);
            q->qclass = rd16(pkt + pos + 2);
            pos += 4;
            q->has_question = true;
        }
    }
    size_t end = 0;
    if (q->has_question && an == 0 && ns == 0 && ar == 1)
        end = read_opt(pkt, len, pos, q);
    if (q->opcode != 0)
        return DNSMSG_NOTIMP; /* with the OPT echoed when there was a readable one */
    if (!q->has_question || an != 0 || ns != 0 || ar > 1)
        return DNSMSG_FORMERR;
    if (ar == 1) {
        /* One additional record: only an OPT; TSIG and broken records are refused. */
        if (end == 0) {
            q->edns = false;
            return DNSMSG_FORMERR;
        }
        pos = end;
        if (q->edns_version > 0)
            return DNSMSG_BADVERS;
    }
    if (pos != len)
        return DNSMSG_FORMERR; /* trailing bytes */
    if (q->qtype == TYPE_AXFR || q->qtype == TYPE_IXFR)
        return DNSMSG_REFUSED;
    if (q->qtype == TYPE_OPT || q->qtype == TYPE_TSIG || q->qtype == TYPE_TKEY)
        return DNSMSG_FORMERR; /* meta types that cannot be asked for */
    return DNSMSG_OK;
}

static size_t put_opt(uint8_t *p, unsigned ext_rcode, bool do_bit, uint16_t rdlen)
{
    p[0] = 0; /* root owner */
    wr16(p + 1, TYPE_OPT);
    wr16(p + 3, DNSMSG_EDNS_SIZE);
    wr32(p + 5, (uint32_t)(ext_rcode >> 4) << 24 | (do_bit ? OPT_DO : 0));
    wr16(p + 9, rdlen);
    return 11;
}

/* An OPT record holding one Extended DNS Error (RFC 8914) option. Returns its length. */
static size_t put_opt_ede(uint8_t *p, unsigned rcode, bool do_bit, uint16_t info_code,
                          const char *text)
{
    size_t tlen = text ? strlen(text) : 0;
    if (tlen > DNSMSG_EDE_TEXT_MAX)
        tlen = DNSMSG_EDE_TEXT_MAX;
    size_t n = put_opt(p, rcode, do_bit, (uint16_t)(4 + 2 + tlen));
    wr16(p + n, EDNS_OPT_EDE);
    wr16(p + n + 2, (uint16_t)(2 + tlen));
    wr16(p + n + 4, info_code);
    if (tlen > 0)
        memcpy(p + n + 6, text, tlen);
    return n + 6 + tlen;
}

size_t dnsmsg_error_reply(const struct dnsmsg_query *q, unsigned rcode, uint8_t *out, size_t cap)
{
    if (cap < DNSMSG_SMALL_MAX)
        return 0;
    uint16_t flags = (uint16_t)(F_QR | (unsigned)q->opcode << 11 | (q->rd ? F_RD : 0) | F_RA |
                                (q->cd ? F_CD : 0) | (rcode & 0x0F));
    wr16(out, q->id);
    wr16(out + 2, flags);
    wr16(out + 4, q->has_question ? 1 : 0);
    wr16(out + 6, 0);
    wr16(out + 8, 0);
    wr16(out + 10, q->edns ? 1 : 0);
    size_t n = DNS_HEADER_LEN;
    if (q->has_question) {
        memcpy(out + n, q->qname, q->qname_len);
        n += q->qname_len;
        wr16(out + n, q->qtype);
        wr16(out + n + 2, q->qclass);
        n += 4;
    }
    if (q->edns)
        n += put_opt(out + n, rcode, q->do_bit, 0);
    return n;
}

void dnsmsg_name_lower(const uint8_t *name, size_t len, uint8_t *out)
{
    /* Length bytes are below 64, so lower-casing them is harmless. */
    for (size_t i = 0; i < len; i++)
        out[i] = dns_lower(name[i]);
}

size_t dnsmsg_upstream_query(const uint8_t *qname, size_t qname_len, uint16_t qtype,
                             uint16_t qclass, uint16_t id, bool cd, bool do_bit,
                             const uint8_t *loop_marker, const uint8_t *carried, size_t n_carried,
                             uint8_t *out, size_t cap)
{
    if (cap < DNSMSG_SMALL_MAX || qname_len > DNS_MAX_NAME)
        return 0;
    wr16(out, id);
    wr16(out + 2, (uint16_t)(F_RD | (cd ? F_CD : 0)));
    wr16(out + 4, 1);
    wr16(out + 6, 0);
    wr16(out + 8, 0);
    wr16(out + 10, 1);
    size_t n = DNS_HEADER_LEN;
    memcpy(out + n, qname, qname_len);
    n += qname_len;
    wr16(out + n, qtype);
    wr16(out + n + 2, qclass);
    n += 4;
    if (!loop_marker)
        n_carried = 0;
    if (n_carried > DNSMSG_LOOP_CARRY)
        n_carried = DNSMSG_LOOP_CARRY;
    size_t markers = loop_marker ? 1 + n_carried : 0; /* 12 + 255 + 4 + 11 + 4 * 20 < 512 */
    n += put_opt(out + n, 0, do_bit, (uint16_t)(markers * (4 + DNSMSG_LOOP_MARKER_LEN)));
    for (size_t i = 0; i < markers; i++) {
        wr16(out + n, DNSMSG_LOOP_OPTION);
        wr16(out + n + 2, DNSMSG_LOOP_MARKER_LEN);
        memcpy(out + n + 4, i == 0 ? loop_marker : carried + (i - 1) * DNSMSG_LOOP_MARKER_LEN,
               DNSMSG_LOOP_MARKER_LEN);
        n += 4 + DNSMSG_LOOP_MARKER_LEN;
    }
    return n;
}

size_t dnsmsg_loop_markers(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                           uint8_t out[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN])
{
    if (!q->edns || (size_t)q->opt_rdata + q->opt_rdlen > len)
        return 0;
    const uint8_t *p = pkt + q->opt_rdata, *end = p + q->opt_rdlen;
    size_t found = 0;
    while (end - p >= 4 && found < DNSMSG_LOOP_CARRY) {
        uint16_t code = rd16(p), n = rd16(p + 2);
        if ((size_t)(end - p - 4) < n)
            break;
        if (code == DNSMSG_LOOP_OPTION && n == DNSMSG_LOOP_MARKER_LEN)
            memcpy(out + found++ * DNSMSG_LOOP_MARKER_LEN, p + 4, DNSMSG_LOOP_MARKER_LEN);
        p += 4u + n;
    }
    return found;
}

void dnsmsg_loop_marker(const uint8_t key[DNSMSG_LOOP_KEY_LEN], const uint8_t nonce[8],
                        uint8_t out[DNSMSG_LOOP_MARKER_LEN])
{
    uint64_t tag = siphash24(key, nonce, 8);
    memcpy(out, nonce, 8);
    for (int i = 0; i < 8; i++)
        out[8 + i] = (uint8_t)(tag >> (8 * i));
}

bool dnsmsg_query_has_loop_marker(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                                  const uint8_t key[DNSMSG_LOOP_KEY_LEN])
{
    if (!q->edns || (size_t)q->opt_rdata + q->opt_rdlen > len)
        return false;
    const uint8_t *p = pkt + q->opt_rdata, *end = p + q->opt_rdlen;
    while (end - p >= 4) {
        uint16_t code = rd16(p), n = rd16(p + 2);
        if ((size_t)(end - p - 4) < n)
            return false;
        if (code == DNSMSG_LOOP_OPTION && n == DNSMSG_LOOP_MARKER_LEN) {
            uint8_t want[DNSMSG_LOOP_MARKER_LEN];
            dnsmsg_loop_marker(key, p + 4, want);
            if (memcmp(want, p + 4, sizeof want) == 0)
                return true;
        }
        p += 4u + n;
    }
    return false;
}

bool dnsmsg_reply_matches(const uint8_t *pkt, size_t len, uint16_t id, const uint8_t *qname,
                          size_t qname_len, uint16_t qtype, uint16_t qclass)
{
    if (len < DNS_HEADER_LEN + qname_len + 4)
        return false;
    uint16_t flags = rd16(pkt + 2);
    if (rd16(pkt) != id || !(flags & F_QR) || ((flags >> 11) & 0x0F) != 0 || rd16(pkt + 4) != 1)
        return false;
    const uint8_t *n = pkt + DNS_HEADER_LEN;
    for (size_t i = 0; i < qname_len; i++) {
        if (dns_lower(n[i]) != dns_lower(qname[i]))
            return false;
    }
    const uint8_t *t = n + qname_len;
    return rd16(t) == qtype && rd16(t + 2) == qclass;
}

/*
 * The most EDNS options a reply's OPT may carry. Servers send a handful (a cookie, NSID,
 * padding, an Extended DNS Error or two); hundreds are an attack on whoever parses them.
 */
#define REPLY_MAX_OPTIONS 64
/* At most this much of an upstream's Extended DNS Errors is passed on to a client. */
#define EDE_COPY_MAX 512

/* An OPT's options must tile its RDATA exactly, and be few. */
static int check_options(const uint8_t *rdata, size_t rdlen)
{
    unsigned n = 0;
    for (size_t o = 0; o < rdlen; n++) {
        if (n == REPLY_MAX_OPTIONS || o + 4 > rdlen || o + 4 + rd16(rdata + o + 2) > rdlen)
            return -1;
        o += 4u + rd16(rdata + o + 2);
    }
    return 0;
}

/*
 * Walk a record's RDATA field by field as ldns will (its descriptor of the type, the sizes
 * ldns_wire2rdf gives each field) and read every name in it with our own reader first. ldns
 * follows up to 65,535 compression pointers per name, forward ones too: a 64 KB reply whose
 * records all name the far end of a long pointer chain costs it ~40 million hops (~20 ms).
 * Ours takes backward pointers only and at most 256 steps, so what ldns then sees is cheap,
 * and a CNAME target is one CNAME cloaking can read. The fields must fill the RDATA exactly
 * (ldns would read the next record from where they end). Returns 0, or -1.
 */
static int check_rdata(const uint8_t *pkt, size_t len, uint16_t type, size_t pos, size_t end)
{
    const ldns_rr_descriptor *d = ldns_rr_descript(type);
    size_t fields = ldns_rr_descriptor_maximum(d);
    for (size_t f = 0; pos < end && f < fields; f++) {
        size_t n;
        switch (ldns_rr_descriptor_field_type(d, f)) {
        case LDNS_RDF_TYPE_DNAME:
            if (read_name(pkt, len, pos, true, NULL, &pos) == 0)
                return -1;
            continue;
        case LDNS_RDF_TYPE_CLASS:
        case LDNS_RDF_TYPE_ALG:
        case LDNS_RDF_TYPE_CERTIFICATE_USAGE:
        case LDNS_RDF_TYPE_SELECTOR:
        case LDNS_RDF_TYPE_MATCHING_TYPE:
        case LDNS_RDF_TYPE_INT8:
            n = 1;
            break;
        case LDNS_RDF_TYPE_TYPE:
        case LDNS_RDF_TYPE_INT16:
        case LDNS_RDF_TYPE_CERT_ALG:
            n = 2;
            break;
        case LDNS_RDF_TYPE_TIME:
        case LDNS_RDF_TYPE_INT32:
        case LDNS_RDF_TYPE_A:
        case LDNS_RDF_TYPE_PERIOD:
            n = 4;
            break;
        case LDNS_RDF_TYPE_TSIGTIME:
        case LDNS_RDF_TYPE_EUI48:
            n = 6;
            break;
        case LDNS_RDF_TYPE_ILNP64:
        case LDNS_RDF_TYPE_EUI64:
            n = 8;
            break;
        case LDNS_RDF_TYPE_AAAA:
            n = 16;
            break;
        case LDNS_RDF_TYPE_STR:
        case LDNS_RDF_TYPE_NSEC3_SALT:
        case LDNS_RDF_TYPE_TAG:
        case LDNS_RDF_TYPE_B32_EXT:
        case LDNS_RDF_TYPE_NSEC3_NEXT_OWNER:
            n = 1u + pkt[pos];
            break;
        case LDNS_RDF_TYPE_INT16_DATA:
            if (pos + 2 > end)
                return -1;
            n = 2u + rd16(pkt + pos);
            break;
        case LDNS_RDF_TYPE_HIP:
            if (pos + 4 > end)
                return -1;
            n = 4u + pkt[pos] + rd16(pkt + pos + 2);
            break;
        default: /* the rest of the RDATA, no name in it */
            n = end - pos;
            break;
        }
        pos += n;
    }
    return pos == end ? 0 : -1;
}

int dnsmsg_reply_scan(const uint8_t *pkt, size_t len, struct dnsmsg_reply_info *info)
{
    memset(info, 0, sizeof *info);
    if (len < DNS_HEADER_LEN || rd16(pkt + 4) != 1)
        return -1;
    uint16_t flags = rd16(pkt + 2);
    info->rcode = flags & 0x0F;
    info->tc = flags & F_TC;

    size_t pos = DNS_HEADER_LEN;
    if (skip_name(pkt, len, &pos) < 0 || pos + 4 > len)
        return -1;
    pos += 4;
    info->question_end = pos;
    info->end = pos; /* grows with every record kept */

    const uint16_t count[3] = {rd16(pkt + 6), rd16(pkt + 8), rd16(pkt + 10)};
    uint16_t kept[3] = {0, 0, 0};
    bool cut = false;
    for (int section = 0; section < 3; section++) {
        for (unsigned i = 0; i < count[section]; i++) {
            size_t start = pos;
            if (skip_name(pkt, len, &pos) < 0 || pos + 10 > len)
                return -1;
            uint16_t type = rd16(pkt + pos);
            uint32_t ttl = rd32(pkt + pos + 4);
            uint16_t rdlen = rd16(pkt + pos + 8);
            if (pos + 10 + rdlen > len)
                return -1;
            /* We never sign queries, so a TSIG in a reply is bogus; and ldns 1.8.3 leaks memory
             * on packets with several (found by fuzz_reply): refuse before ldns sees it. */
            if (type == TYPE_TSIG)
                return -1;
            if (type != TYPE_OPT && check_rdata(pkt, len, type, pos + 10, pos + 10 + rdlen) < 0)
                return -1;
            if (type == TYPE_OPT) {
                if (section != 2 || info->has_opt || pkt[start] != 0 || pos != start + 1 ||
                    check_options(pkt + pos + 10, rdlen) < 0)
                    return -1;
                info->has_opt = true;
                info->opt_off = start;
                info->opt_rdata = (uint16_t)(pos + 10);
                info->opt_rdlen = rdlen;
                info->rcode |= (ttl >> 24) << 4;
                /* Records after the OPT (a TSIG) are not passed on: their offsets would move. */
                info->end = start;
                cut = true;
            }
            pos += 10u + rdlen;
            if (!cut) {
                kept[section]++;
                info->end = pos;
            }
        }
    }
    /* Nothing may follow the last record (as in a query). */
    if (pos != len)
        return -1;
    info->an = kept[0];
    info->ns = kept[1];
    info->ar = kept[2];
    info->records = (uint16_t)(kept[0] + kept[1] + kept[2]);
    /* Whatever we accept can be passed on: to a TCP client, with our OPT record and the
     * upstream's Extended DNS Errors, in at most 65,535 bytes (dnsmsg_client_reply). */
    size_t ede_room = info->opt_rdlen < EDE_COPY_MAX ? info->opt_rdlen : EDE_COPY_MAX;
    if (info->end + 11 + ede_room > DNS_MAX_UDP)
        return -1;

    /* Let ldns judge every record's RDATA (names inside CNAME, SOA, MX, ...). */
    ldns_pkt *parsed = NULL;
    if (ldns_wire2pkt(&parsed, pkt, len) != LDNS_STATUS_OK) {
        ldns_pkt_free(parsed);
        return -1;
    }
    ldns_pkt_free(parsed);
    return 0;
}

/* Copy the Extended DNS Error options of the upstream's OPT into out; returns bytes written. */
static size_t copy_ede(const uint8_t *rdata, size_t rdlen, uint8_t *out, size_t cap)
{
    size_t n = 0;
    for (size_t o = 0; o + 4 <= rdlen;) {
        size_t olen = rd16(rdata + o + 2);
        if (o + 4 + olen > rdlen)
            break;
        if (rd16(rdata + o) == EDNS_OPT_EDE && n + 4 + olen <= cap) {
            memcpy(out + n, rdata + o, 4 + olen);
            n += 4 + olen;
        }
        o += 4 + olen;
    }
    return n;
}

size_t dnsmsg_client_reply(const struct dnsmsg_query *q, const uint8_t *reply, size_t len,
                           const struct dnsmsg_reply_info *info, size_t limit, uint8_t *out,
                           size_t cap)
{
    (void)len;
    unsigned rcode = info->rcode;
    if (!q->edns && rcode > 15)
        rcode = RCODE_SERVFAIL; /* an extended rcode this client cannot read */

    size_t body = info->end - info->question_end;
    uint8_t ede[EDE_COPY_MAX];
    size_t ede_len = 0;
    if (q->edns && info->has_opt)
        ede_len = copy_ede(reply + info->opt_rdata, info->opt_rdlen, ede, sizeof ede);
    size_t opt_len = q->edns ? 11 + ede_len : 0;
    size_t qlen = DNS_HEADER_LEN + q->qname_len + 4;
    size_t total = qlen + body + opt_len;
    bool truncate = total > limit;
    if (truncate)
        total = qlen + opt_len;
    if (total > cap)
        return 0;

    uint16_t flags = rd16(reply + 2);
    flags = (uint16_t)((flags & ~(F_RD | F_Z | 0x0F)) | (q->rd ? F_RD : 0) | F_RA | (rcode & 0x0F));
    if (truncate)
        flags |= F_TC;
    wr16(out, q->id);
    wr16(out + 2, flags);
    wr16(out + 4, 1);
    wr16(out + 6, truncate ? 0 : info->an);
    wr16(out + 8, truncate ? 0 : info->ns);
    wr16(out + 10, (uint16_t)((truncate ? 0 : info->ar) + (q->edns ? 1 : 0)));
    memcpy(out + DNS_HEADER_LEN, q->qname, q->qname_len);
    /* Type and class are the same as the client's: dnsmsg_reply_matches() checked. */
    memcpy(out + DNS_HEADER_LEN + q->qname_len, reply + DNS_HEADER_LEN + q->qname_len, 4);
    size_t n = qlen;
    if (!truncate) {
        memcpy(out + n, reply + info->question_end, body);
        n += body;
    }
    if (q->edns) {
        n += put_opt(out + n, rcode, q->do_bit, (uint16_t)ede_len);
        memcpy(out + n, ede, ede_len);
        n += ede_len;
    }
    return n;
}

/* Write a dotted name in wire form; returns its length. The names here are constants. */
static size_t put_text_name(uint8_t *p, const char *name)
{
    size_t n = 0;
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        p[n++] = (uint8_t)l;
        memcpy(p + n, name, l);
        n += l;
        name += l + (dot ? 1 : 0);
    }
    p[n++] = 0;
    return n;
}

static size_t put_soa(uint8_t *p, uint32_t ttl)
{
    size_t n = 0;
    wr16(p, 0xC000 | DNS_HEADER_LEN); /* owner: the question's name */
    wr16(p + 2, TYPE_SOA);
    wr16(p + 4, 1);
    wr32(p + 6, ttl);
    n = 12; /* RDLENGTH at p + 10, filled below */
    n += put_text_name(p + n, DNSMSG_SOA_MNAME);
    n += put_text_name(p + n, DNSMSG_SOA_RNAME);
    wr32(p + n, 1);          /* serial */
    wr32(p + n + 4, 3600);   /* refresh */
    wr32(p + n + 8, 600);    /* retry */
    wr32(p + n + 12, 86400); /* expire */
    wr32(p + n + 16, ttl);   /* minimum: the negative caching TTL */
    n += 20;
    wr16(p + 10, (uint16_t)(n - 12));
    return n;
}

size_t dnsmsg_block_reply(const struct dnsmsg_query *q, enum dnsmsg_block_mode mode, uint32_t ttl,
                          const char *ede_text, uint8_t *out, size_t cap)
{
    if (cap < DNSMSG_SMALL_MAX || !q->has_question)
        return 0;
    unsigned rcode = RCODE_NOERROR;
    bool address = false, soa = false;
    switch (mode) {
    case DNSMSG_BLOCK_NXDOMAIN:
        rcode = RCODE_NXDOMAIN;
        soa = true;
        break;
    case DNSMSG_BLOCK_NULL:
        address = q->qclass == 1 && (q->qtype == TYPE_A || q->qtype == TYPE_AAAA);
        soa = !address;
        break;
    case DNSMSG_BLOCK_REFUSED:
        rcode = RCODE_REFUSED;
        break;
    case DNSMSG_BLOCK_NODATA:
        soa = true;
        break;
    }
    /* Header, question and OPT as for an error answer; then the records go in between. */
    dnsmsg_error_reply(q, rcode, out, cap);
    size_t n = DNS_HEADER_LEN + q->qname_len + 4; /* the OPT is written again at the end */
    if (address) {
        size_t alen = q->qtype == TYPE_A ? 4 : 16;
        wr16(out + n, 0xC000 | DNS_HEADER_LEN);
        wr16(out + n + 2, q->qtype);
        wr16(out + n + 4, 1);
        wr32(out + n + 6, ttl);
        wr16(out + n + 10, (uint16_t)alen);
        memset(out + n + 12, 0, alen);
        n += 12 + alen;
        wr16(out + 6, 1);
    }
    if (soa) {
        n += put_soa(out + n, ttl);
        wr16(out + 8, 1);
    }
    if (q->edns)
        n += put_opt_ede(out + n, rcode, q->do_bit, EDE_BLOCKED, ede_text);
    return n;
}

/* The length of the error answer up to its OPT record (header and question). */
static size_t error_reply_body(const struct dnsmsg_query *q)
{
    return DNS_HEADER_LEN + (q->has_question ? q->qname_len + 4u : 0);
}

size_t dnsmsg_error_reply_ede(const struct dnsmsg_query *q, unsigned rcode, uint16_t info_code,
                              const char *text, uint8_t *out, size_t cap)
{
    size_t n = dnsmsg_error_reply(q, rcode, out, cap);
    if (n == 0 || !q->edns)
        return n;
    n = error_reply_body(q);
    return n + put_opt_ede(out + n, rcode, q->do_bit, info_code, text);
}

size_t dnsmsg_any_reply(const struct dnsmsg_query *q, uint32_t ttl, uint8_t *out, size_t cap)
{
    static const uint8_t hinfo[] = {7, 'R', 'F', 'C', '8', '4', '8', '2', 0}; /* CPU, OS "" */
    if (!q->has_question || dnsmsg_error_reply(q, RCODE_NOERROR, out, cap) == 0)
        return 0;
    size_t n = error_reply_body(q);
    wr16(out + n, 0xC000 | DNS_HEADER_LEN); /* owner: the question's name */
    wr16(out + n + 2, TYPE_HINFO);
    wr16(out + n + 4, q->qclass == 255 ? 1 : q->qclass); /* class ANY (255): answer in IN */
    wr32(out + n + 6, ttl);
    wr16(out + n + 10, sizeof hinfo);
    memcpy(out + n + 12, hinfo, sizeof hinfo);
    n += 12 + sizeof hinfo;
    wr16(out + 6, 1);
    if (q->edns)
        n += put_opt(out + n, RCODE_NOERROR, q->do_bit, 0);
    return n;
}

bool dnsmsg_reply_cnames(const uint8_t *pkt, size_t len, const struct dnsmsg_reply_info *info,
                         dnsmsg_name_fn fn, void *ctx)
{
    size_t pos = info->question_end;
    for (unsigned i = 0; i < info->an; i++) {
        if (skip_name(pkt, len, &pos) < 0 || pos + 10 > len)
            return false;
        uint16_t type = rd16(pkt + pos);
        uint16_t rdlen = rd16(pkt + pos + 8);
        size_t rdata = pos + 10;
        if (rdata + rdlen > len)
            return false;
        if (type == TYPE_CNAME) {
            uint8_t name[DNS_MAX_NAME];
            size_t end, n = read_name(pkt, len, rdata, true, name, &end);
            if (n > 0 && fn(ctx, name, n))
                return true;
        }
        pos = rdata + rdlen;
    }
    return false;
}

const char *dnsmsg_rcode_name(unsigned rcode, char *buf, size_t len)
{
    static const char *const names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                        "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                        "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode < sizeof names / sizeof *names)
        return names[rcode];
    if (rcode == RCODE_BADVERS)
        return "BADVERS";
    snprintf(buf, len, "RCODE%u", rcode);
    return buf;
}
