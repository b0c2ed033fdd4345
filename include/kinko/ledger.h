/* kinko ledger: the signed, append-only media ledger (台帳) under VAULT/ledger/.
 *
 * One file per record (ledger/<seq, 12 digits>.klr), created atomically
 * (written to a temporary name, then link(2)ed to its final name: a second
 * writer of the same number gets -EEXIST and retries with the next one), so
 * several workstations can append on shared network storage without a shared
 * append. Each record carries the BLAKE2b-256 hash of the whole previous record
 * (the chain the writer saw) and an Ed25519 signature by the acting user, whose
 * public key is in the signed policy. Byte layout: kinko-format(5), LEDGER. */
#ifndef KINKO_LEDGER_H
#define KINKO_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kinko/format.h"

struct kpolicy;
struct kkeys_user;
struct kerrinfo;

#define KLEDGER_DIR "ledger"
#define KLEDGER_MAGIC "kLR\x01"
#define KLEDGER_HASHBYTES 32
#define KLEDGER_BODY_MAX 8192  /* JSON body of one record */
#define KLEDGER_REC_MAX (4 + 4 + 16 + 8 + 32 + 8 + 1 + KFORMAT_USERID_MAX + 4 + KLEDGER_BODY_MAX + 64)
#define KLEDGER_REC_MIN (4 + 4 + 16 + 8 + 32 + 8 + 2 + 4 + 2 + 64)
#define KLEDGER_NAME_DIGITS 12
#define KLEDGER_TEXT_MAX 128   /* a medium id, serial, label, location, holder */

struct kledger_rec {
	uint8_t vault_id[16];
	uint64_t seq;                    /* 1, 2, ... */
	uint8_t prev[KLEDGER_HASHBYTES]; /* hash of record seq-1 (zeros for 1) */
	int64_t time_ms;                 /* UTC milliseconds */
	char signer[KFORMAT_USERID_MAX + 1];
	char *body;                      /* JSON object text, NUL-terminated (malloc'd) */
	size_t bodylen;
	uint8_t sig[64];
	uint8_t hash[KLEDGER_HASHBYTES]; /* hash of the whole record (set by parse/serialize) */
};
void kledger_rec_clear(struct kledger_rec *r);
/* bounded parse of one record file (no signature check): KERR_FORMAT with why */
int kledger_rec_parse(const uint8_t *buf, size_t len, struct kledger_rec *r, char *why,
		      size_t whylen) __attribute__((warn_unused_result));
/* serialize and sign r (body, signer, seq, prev, time_ms, vault_id set) with sk */
int kledger_rec_serialize(struct kledger_rec *r, const uint8_t sk[64], uint8_t **out,
			  size_t *outlen) __attribute__((warn_unused_result));
/* signature of a parsed record's bytes: 0 or KERR_AUTH */
int kledger_rec_verify(const uint8_t *buf, size_t len, const uint8_t pk[32])
	__attribute__((warn_unused_result));
/* the body's JSON: an object with a string "event" (KERR_FORMAT otherwise) */
int kledger_body_check(const char *body, size_t len, char *why, size_t whylen)
	__attribute__((warn_unused_result));

/* Append body (a JSON object) signed by u, whose key must be the policy's key
 * of u->id. *seq receives the record's number. */
int kledger_append(int vfd, const struct kpolicy *p, const struct kkeys_user *u, const char *body,
		   uint64_t *seq, struct kerrinfo *ei) __attribute__((warn_unused_result));

/* Read and verify the whole ledger in order. rec(ctx, r) is called for each
 * record whose signature and chain link verify; problem(ctx, file, seq, text)
 * for each bad record, missing number or stray file. Returns 0 (check
 * *problems) or a negative error if the ledger could not be read at all. */
typedef void (*kledger_rec_fn)(void *ctx, const struct kledger_rec *r);
typedef void (*kledger_problem_fn)(void *ctx, const char *file, uint64_t seq, const char *problem);
int kledger_scan(int vfd, const struct kpolicy *p, kledger_rec_fn rec, kledger_problem_fn problem,
		 void *ctx, size_t *records, size_t *problems) __attribute__((warn_unused_result));

/* ---- what this workstation has seen (ledger/seen.c) ----
 * The newest record number and hash seen here (0 and zeros: none). kledger_append
 * and a clean kledger_scan raise it; kledger_scan reports records up to it that
 * are gone or differ. set(raise = false) overwrites it (seq 0 forgets it): only
 * for an administrator's restore of an older ledger. */
int kledger_seen_get(const uint8_t vault_id[16], uint64_t *seq, uint8_t hash[32]);
int kledger_seen_set(const uint8_t vault_id[16], uint64_t seq, const uint8_t hash[32], bool raise);

/* ---- the media table folded from the records (ledger/media.c) ---- */
enum kledger_kind { KMEDIA_USB = 0, KMEDIA_HDD, KMEDIA_SD, KMEDIA_TAPE, KMEDIA_LAPTOP };
const char *kledger_kind_name(int k);
int kledger_kind_from_name(const char *s); /* kind or -1 */
/* a medium id, serial, label, location or holder: 1..KLEDGER_TEXT_MAX bytes of
 * valid UTF-8 without control characters (ids: [A-Za-z0-9._-] only) */
bool kledger_text_valid(const char *s);
bool kledger_id_valid(const char *s);

struct kledger_medium {
	char *id, *kind, *serial, *label, *location, *holder;
	bool disposed;
	char *dispose_method, *certificate_sha256;
	int64_t registered_ms, updated_ms, disposed_ms, last_backup_ms;
	char registered_by[KFORMAT_USERID_MAX + 1];
	uint64_t backups;
};
struct kledger_media {
	struct kledger_medium *m;
	size_t n;
};
/* apply one verified record to the table (unknown events are ignored) */
int kledger_media_apply(struct kledger_media *t, const struct kledger_rec *r);
struct kledger_medium *kledger_media_find(const struct kledger_media *t, const char *id);
void kledger_media_free(struct kledger_media *t);

/* ---- take-outs (持出し) folded from the records (ledger/takeout.c) ----
 * Events: takeout-request (signed by the requester), takeout-approve and
 * takeout-reject (an admin of the policy other than the requester),
 * takeout-export (the requester), takeout-close and takeout-lost (the
 * requester or an admin). A record that does not fit the take-out's state or
 * whose signer may not do that step is verified but changes nothing. The id is
 * "T" + the sequence number of the request record. An administrator disabled
 * after a step keeps it (roles never change; removed users' records no longer
 * verify at all). */
enum { KTO_PENDING = 0, KTO_APPROVED, KTO_REJECTED, KTO_EXPORTED, KTO_CLOSED, KTO_LOST };
const char *kledger_takeout_state_name(int s);
#define KLEDGER_TAKEOUT_ID_MAX 24
struct kledger_takeout {
	char id[KLEDGER_TAKEOUT_ID_MAX];
	uint64_t seq;                      /* the request record */
	uint8_t req_hash[KLEDGER_HASHBYTES];
	char requester[KFORMAT_USERID_MAX + 1];
	char *medium;
	int64_t from, until;               /* unix seconds: use allowed in [from, until) */
	int64_t requested_ms, approved_ms, rejected_ms, exported_ms, closed_ms, lost_ms;
	char *details;                     /* sealed personal fields (JSON text), see below */
	int state;
	char approved_by[KFORMAT_USERID_MAX + 1], rejected_by[KFORMAT_USERID_MAX + 1];
	char closed_by[KFORMAT_USERID_MAX + 1], lost_by[KFORMAT_USERID_MAX + 1];
	char *note, *reason, *lost_note, *export_vault, *export_root_pk, *export_to;
	uint64_t export_files, export_bytes, audit_segments;
};
struct kledger_takeouts {
	struct kledger_takeout *t;
	size_t n;
};
int kledger_takeout_apply(struct kledger_takeouts *t, const struct kpolicy *p,
			  const struct kledger_rec *r);
struct kledger_takeout *kledger_takeout_find(const struct kledger_takeouts *t, const char *id);
void kledger_takeouts_free(struct kledger_takeouts *t);
/* exported, neither closed nor lost, and the period is over */
bool kledger_takeout_overdue(const struct kledger_takeout *t, int64_t now);

/* The personal fields of a request (name, department, contact, files, purpose:
 * a JSON object text) sealed to the requester and the policy's active admins
 * and auditors: a random key wraps the text (XChaCha20-Poly1305), and the key
 * is sealed to each recipient's box key. *out: JSON text of the sealed object. */
int kledger_details_seal(const char *plain, const struct kpolicy *p, const char *requester,
			 char **out) __attribute__((warn_unused_result));
/* open sealed details as user u: 0 (*plain malloc'd JSON text), KERR_NOGRANT when
 * u is not a recipient, KERR_AUTH/KERR_FORMAT when damaged */
int kledger_details_open(const char *sealed, const struct kkeys_user *u, char **plain)
	__attribute__((warn_unused_result));

#endif
