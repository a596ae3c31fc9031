/*
 * dnsmsg: DNS wire format at the edges of the server.
 *
 * Client side: a cheap check of a query's header, question and EDNS record (no allocation, no
 * full parse), and the error answers (FORMERR, NOTIMP, REFUSED, SERVFAIL, BADVERS) built from
 * what was read. Upstream side: the query we send, the match of a reply against the question
 * we asked, a structural scan of the reply (ldns validates every record), and the rewrite of
 * that reply for each waiting client: its ID, its letter case, its EDNS and its size limit.
 *
 * Pure: no sockets, no event loop, no globals. Unit-tested and fuzzed on its own.
 */
#ifndef TELESINK_DNSMSG_H
#define TELESINK_DNSMSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DNS_HEADER_LEN 12
#define DNS_MAX_NAME   255
#define DNS_MAX_UDP    65535
/* What we advertise to upstreams and clients (the DNS flag day 2020 value). */
#define DNSMSG_EDNS_SIZE 1232
/* A buffer this big holds any error answer or upstream query we build. */
#define DNSMSG_SMALL_MAX 512

enum dns_rcode {
    RCODE_NOERROR = 0,
    RCODE_FORMERR = 1,
    RCODE_SERVFAIL = 2,
    RCODE_NXDOMAIN = 3,
    RCODE_NOTIMP = 4,
    RCODE_REFUSED = 5,
    RCODE_BADVERS = 16, /* extended: needs EDNS */
};

enum dns_type {
    TYPE_A = 1,
    TYPE_NS = 2,
    TYPE_CNAME = 5,
    TYPE_SOA = 6,
    TYPE_HINFO = 13,
    TYPE_AAAA = 28,
    TYPE_OPT = 41,
    TYPE_TKEY = 249,
    TYPE_TSIG = 250,
    TYPE_IXFR = 251,
    TYPE_AXFR = 252,
    TYPE_ANY = 255,
};

/* What to do with a client's packet. */
enum dnsmsg_verdict {
    DNSMSG_OK = 0,  /* a well-formed standard query */
    DNSMSG_DROP,    /* not worth an answer: shorter than a header, or QR=1 */
    DNSMSG_FORMERR, /* answer FORMERR */
    DNSMSG_NOTIMP,  /* answer NOTIMP: an opcode other than QUERY */
    DNSMSG_REFUSED, /* answer REFUSED: zone transfers */
    DNSMSG_BADVERS, /* answer BADVERS: EDNS version above 0 */
};

/* What we read from a client's query. Lives on the stack or inside the query it describes. */
struct dnsmsg_query {
    uint16_t id;
    uint8_t opcode;
    bool rd, cd;
    bool has_question; /* qname/qtype/qclass are valid */
    uint8_t qname_len; /* wire length including the root label */
    uint16_t qtype, qclass;
    bool edns; /* the client sent an OPT record */
    uint8_t edns_version;
    bool do_bit;
    uint16_t udp_size;  /* the largest UDP answer this client takes: 512 .. 65535 */
    uint16_t opt_rdata; /* offset and length of the OPT RDATA (the options) in the packet */
    uint16_t opt_rdlen;
    uint8_t qname[DNS_MAX_NAME]; /* wire form, letter case as sent */
};

enum dnsmsg_verdict dnsmsg_parse_query(const uint8_t *pkt, size_t len, struct dnsmsg_query *q);

/*
 * An answer with no records: the client's ID and question (when it had one), QR and RA set, AA
 * and Z clear, RD and CD copied, the rcode given (extended rcodes go into the OPT record, which
 * is added when the client sent EDNS). Returns the length written (cap >= DNSMSG_SMALL_MAX).
 */
size_t dnsmsg_error_reply(const struct dnsmsg_query *q, unsigned rcode, uint8_t *out, size_t cap);

/* Extended DNS Error codes (RFC 8914) we send. */
#define EDE_OTHER   0
#define EDE_BLOCKED 15

/*
 * The same, with an Extended DNS Error (info_code, EXTRA-TEXT text cut to DNSMSG_EDE_TEXT_MAX
 * bytes) when the client sent EDNS.
 */
size_t dnsmsg_error_reply_ede(const struct dnsmsg_query *q, unsigned rcode, uint16_t info_code,
                              const char *text, uint8_t *out, size_t cap);

/*
 * The minimal answer to a question of type ANY (RFC 8482 section 4.2, as Cloudflare answers
 * it): NOERROR with one synthesized HINFO record, CPU "RFC8482" and an empty OS, with the TTL
 * given, so that a 30-byte query can never draw a big answer. Returns the length (cap >=
 * DNSMSG_SMALL_MAX).
 */
size_t dnsmsg_any_reply(const struct dnsmsg_query *q, uint32_t ttl, uint8_t *out, size_t cap);

/* The question in lower case: the key for coalescing identical questions and for matching. */
void dnsmsg_name_lower(const uint8_t *name, size_t len, uint8_t *out);

/*
 * The query we send upstream: our ID, RD set, CD as the client's, the (lower-cased) name, and
 * an OPT record advertising DNSMSG_EDNS_SIZE with the client's DO bit, carrying our loop marker
 * when one is given, then the n_carried (<= DNSMSG_LOOP_CARRY) markers of other telesinks the
 * client's query carried (dnsmsg_loop_markers). No other client option is passed on. Returns
 * the length (cap >= DNSMSG_SMALL_MAX).
 */
size_t dnsmsg_upstream_query(const uint8_t *qname, size_t qname_len, uint16_t qtype,
                             uint16_t qclass, uint16_t id, bool cd, bool do_bit,
                             const uint8_t *loop_marker, const uint8_t *carried, size_t n_carried,
                             uint8_t *out, size_t cap);

/*
 * Forwarding-loop detection. Every query we send upstream carries a private-use EDNS option
 * (RFC 6891 section 9: 65001-65534 are for local use; forwarders such as dnsmasq pass unknown
 * options on): an 8-byte random nonce and the first 8 bytes of SipHash(key, nonce), key being
 * a random per-process secret. A query that reaches us carrying a marker we can verify was
 * sent by this very process: an upstream forwards back to us. The nonce is fresh for every
 * query, so upstreams cannot use the option to link our queries to each other.
 */
#define DNSMSG_LOOP_OPTION     65430
#define DNSMSG_LOOP_MARKER_LEN 16
#define DNSMSG_LOOP_KEY_LEN    16
void dnsmsg_loop_marker(const uint8_t key[DNSMSG_LOOP_KEY_LEN], const uint8_t nonce[8],
                        uint8_t out[DNSMSG_LOOP_MARKER_LEN]);
/* True when a query that dnsmsg_parse_query() accepted carries a marker made with key. */
bool dnsmsg_query_has_loop_marker(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                                  const uint8_t key[DNSMSG_LOOP_KEY_LEN]);
/*
 * The loop markers a query (accepted by dnsmsg_parse_query) carries, the first
 * DNSMSG_LOOP_CARRY of them, copied to out (DNSMSG_LOOP_MARKER_LEN bytes each); returns how
 * many. When one telesink forwards to another, the second passes the first's marker on with
 * its own: a chain of forwarders that comes back round (A -> B -> A) is then recognised by A,
 * at once, instead of going round until every try has timed out.
 */
#define DNSMSG_LOOP_CARRY 3
size_t dnsmsg_loop_markers(const uint8_t *pkt, size_t len, const struct dnsmsg_query *q,
                           uint8_t out[DNSMSG_LOOP_CARRY * DNSMSG_LOOP_MARKER_LEN]);

/*
 * Is this datagram the reply to the question we sent with this ID? Checks QR, opcode, ID and
 * the question (name case-insensitively, type, class). Returns true on a match.
 */
bool dnsmsg_reply_matches(const uint8_t *pkt, size_t len, uint16_t id, const uint8_t *qname,
                          size_t qname_len, uint16_t qtype, uint16_t qclass);

/* The shape of a matched upstream reply, from dnsmsg_reply_scan(). */
struct dnsmsg_reply_info {
    unsigned rcode; /* header rcode plus the OPT's extended bits */
    bool tc;
    size_t question_end; /* offset just past the question */
    size_t end;          /* offset just past the last record */
    uint16_t records;    /* records kept: all but the OPT and anything after it */
    uint16_t an, ns, ar; /* section counts of the records kept */
    bool has_opt;
    size_t opt_off;     /* the OPT record: its first byte */
    uint16_t opt_rdata; /* and its options */
    uint16_t opt_rdlen;
};

/*
 * Scan a matched reply: every record within bounds and nothing after the last one, names
 * well-formed with compression pointers that only point backwards (the names inside RDATA too,
 * found with ldns's descriptor of each type, whose fields must fill the RDATA), at most one OPT
 * (in the additional section, owner root, at most 64 options tiling its RDATA), no TSIG, room
 * to pass it on in 65,535 bytes with our own OPT, and the packet as a whole accepted by ldns.
 * Returns 0, or -1 for a malformed reply.
 */
int dnsmsg_reply_scan(const uint8_t *pkt, size_t len, struct dnsmsg_reply_info *info);

/*
 * The reply for one client: its ID and RD bit, its question's letter case, our OPT record when
 * it sent EDNS (keeping the upstream's extended rcode and any Extended DNS Error), none when it
 * did not, and cut to header + question with TC=1 when longer than limit. Returns the length, or
 * 0 when cap is too small.
 */
size_t dnsmsg_client_reply(const struct dnsmsg_query *q, const uint8_t *reply, size_t len,
                           const struct dnsmsg_reply_info *info, size_t limit, uint8_t *out,
                           size_t cap);

/* How a blocked name is answered. */
enum dnsmsg_block_mode {
    DNSMSG_BLOCK_NXDOMAIN = 0, /* NXDOMAIN with a SOA whose minimum is the TTL */
    DNSMSG_BLOCK_NULL,         /* A 0.0.0.0 / AAAA ::, other types NODATA */
    DNSMSG_BLOCK_REFUSED,      /* REFUSED, no records */
    DNSMSG_BLOCK_NODATA,       /* NOERROR, no answer, a SOA */
};

/* The owner-less SOA we put in negative answers names this server. */
#define DNSMSG_SOA_MNAME "telesink.invalid"
#define DNSMSG_SOA_RNAME "blocked.telesink.invalid"
/* Room for the EXTRA-TEXT of the Extended DNS Error "Blocked". */
#define DNSMSG_EDE_TEXT_MAX 120

/*
 * The answer for a blocked question: the client's ID and question, QR, RA, RD and CD as asked,
 * AA and Z clear; records as the mode says, all with the TTL given (the SOA's minimum too, so
 * the negative answer is cached that long). When the client sent EDNS: an OPT record with the
 * Extended DNS Error 15 "Blocked" carrying ede_text (cut to DNSMSG_EDE_TEXT_MAX bytes). Returns
 * the length (cap >= DNSMSG_SMALL_MAX).
 */
size_t dnsmsg_block_reply(const struct dnsmsg_query *q, enum dnsmsg_block_mode mode, uint32_t ttl,
                          const char *ede_text, uint8_t *out, size_t cap);

/*
 * Call fn with the target of every CNAME record in the answer section of a scanned reply,
 * decompressed to wire form, until fn returns true. Returns true when fn did.
 */
typedef bool (*dnsmsg_name_fn)(void *ctx, const uint8_t *name, size_t len);
bool dnsmsg_reply_cnames(const uint8_t *pkt, size_t len, const struct dnsmsg_reply_info *info,
                         dnsmsg_name_fn fn, void *ctx);

/* "NOERROR", "NXDOMAIN", ... or "RCODE42". buf holds the latter (>= 12 bytes). */
const char *dnsmsg_rcode_name(unsigned rcode, char *buf, size_t len);

#endif
