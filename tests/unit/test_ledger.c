// SPDX-License-Identifier: GPL-2.0-or-later
/* ledger/ledger.c + ledger/media.c + the bounded parts of vault/backup.c:
 * record round trip; every bit flip caught by the parser or the signature;
 * truncation, trailing bytes and hostile length fields refused; random
 * garbage never parses; the media table fold; manifest tail and path checks. */
#include <unistd.h>

#include "kinko/backup.h"
#include "kinko/ledger.h"
#include "kinko/keys.h"
#include "kinko/policy.h"
#include "kt.h"

struct signer {
	uint8_t pk[32], sk[64];
};

static void signer_make(struct signer *s, uint32_t seed)
{
	uint8_t sd[32];

	kt_fill(sd, 32, seed);
	assert_int_equal(kcrypto_sign_seed_keypair(s->pk, s->sk, sd), 0);
}

static uint8_t *make_rec(const struct signer *s, uint64_t seq, const char *body, size_t *len)
{
	struct kledger_rec r;
	uint8_t *out;

	memset(&r, 0, sizeof(r));
	kt_fill(r.vault_id, 16, 1);
	kt_fill(r.prev, 32, (uint32_t)seq);
	r.seq = seq;
	r.time_ms = 1764100000123;
	strcpy(r.signer, "alice");
	r.body = (char *)body;
	r.bodylen = strlen(body);
	assert_int_equal(kledger_rec_serialize(&r, s->sk, &out, len), 0);
	return out;
}

static const char body1[] = "{\"event\":\"register\",\"medium\":\"USB-1\",\"kind\":\"usb\","
			    "\"serial\":\"S1\",\"label\":\"l\",\"location\":\"金庫\",\"holder\":\"山田\"}";

static void test_roundtrip(void **state)
{
	struct signer s, t;
	struct kledger_rec r;
	char why[160];
	uint8_t vid[16], prev[32], h[32];
	size_t len;
	uint8_t *buf;

	(void)state;
	signer_make(&s, 1);
	signer_make(&t, 2);
	buf = make_rec(&s, 7, body1, &len);
	assert_int_equal(len, 4 + 4 + 16 + 8 + 32 + 8 + 1 + 5 + 4 + strlen(body1) + 64);
	assert_memory_equal(buf, "kLR\x01", 4);
	assert_int_equal(kget_le32(buf + 4), len);
	assert_int_equal(kledger_rec_parse(buf, len, &r, why, sizeof(why)), 0);
	kt_fill(vid, 16, 1);
	kt_fill(prev, 32, 7);
	assert_memory_equal(r.vault_id, vid, 16);
	assert_memory_equal(r.prev, prev, 32);
	assert_int_equal(r.seq, 7);
	assert_int_equal(r.time_ms, 1764100000123);
	assert_string_equal(r.signer, "alice");
	assert_string_equal(r.body, body1);
	assert_int_equal(kcrypto_hash(h, 32, NULL, 0, buf, len), 0);
	assert_memory_equal(r.hash, h, 32);
	assert_int_equal(kledger_rec_verify(buf, len, s.pk), 0);
	assert_int_equal(kledger_rec_verify(buf, len, t.pk), KERR_AUTH);
	kledger_rec_clear(&r);
	free(buf);
}

static void test_every_bit(void **state)
{
	struct signer s;
	struct kledger_rec r;
	char why[160];
	size_t len;
	uint8_t *buf;

	(void)state;
	signer_make(&s, 3);
	buf = make_rec(&s, 1, "{\"event\":\"move\",\"medium\":\"M\",\"location\":\"x\"}", &len);
	for (size_t bit = 0; bit < len * 8; bit++) {
		int pr, vr = -1;

		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		pr = kledger_rec_parse(buf, len, &r, why, sizeof(why));
		if (pr == 0)
			vr = kledger_rec_verify(buf, len, s.pk);
		kledger_rec_clear(&r);
		buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		kt_check(pr != 0 || vr != 0, "bit %zu flipped: accepted", bit);
	}
	free(buf);
}

static void test_truncated_and_trailing(void **state)
{
	struct signer s;
	struct kledger_rec r;
	char why[160];
	size_t len;
	uint8_t *buf, *big;

	(void)state;
	signer_make(&s, 4);
	buf = make_rec(&s, 2, body1, &len);
	for (size_t n = 0; n < len; n++) {
		int e = kledger_rec_parse(buf, n, &r, why, sizeof(why));

		kt_check(e != 0, "truncated to %zu accepted", n);
		kledger_rec_clear(&r);
	}
	big = malloc(len + 1);
	memcpy(big, buf, len);
	big[len] = 0;
	kput_le32(big + 4, (uint32_t)len + 1); /* even with a consistent length field */
	assert_int_not_equal(kledger_rec_parse(big, len + 1, &r, why, sizeof(why)), 0);
	free(big);
	free(buf);
}

/* build a record by hand around arbitrary fields (no valid signature) */
static size_t forge(uint8_t *out, uint64_t seq, const char *signer, uint32_t blen_field,
		    const void *body, size_t blen)
{
	size_t o = 0, sl = strlen(signer);

	memcpy(out, "kLR\x01", 4);
	o = 8;
	memset(out + o, 1, 16);
	o += 16;
	kput_le64(out + o, seq);
	o += 8;
	memset(out + o, 0, 32);
	o += 32;
	kput_le64(out + o, 1000);
	o += 8;
	out[o++] = (uint8_t)sl;
	memcpy(out + o, signer, sl);
	o += sl;
	kput_le32(out + o, blen_field);
	o += 4;
	memcpy(out + o, body, blen);
	o += blen;
	memset(out + o, 0xaa, 64);
	o += 64;
	kput_le32(out + 4, (uint32_t)o);
	return o;
}

static void expect_bad(const uint8_t *buf, size_t len, const char *what)
{
	struct kledger_rec r;
	char why[160];
	int e = kledger_rec_parse(buf, len, &r, why, sizeof(why));

	kledger_rec_clear(&r);
	kt_check(e == KERR_FORMAT, "%s: parse returned %d", what, e);
}

static void test_hostile(void **state)
{
	static uint8_t buf[KLEDGER_REC_MAX + 4096];
	static char body[KLEDGER_BODY_MAX + 16];
	const char ok_body[] = "{\"event\":\"x\"}";
	struct kledger_rec r;
	char why[160];
	size_t n;

	(void)state;
	/* the forge helper itself makes a parsable record */
	n = forge(buf, 1, "alice", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	assert_int_equal(kledger_rec_parse(buf, n, &r, why, sizeof(why)), 0);
	kledger_rec_clear(&r);

	n = forge(buf, 0, "alice", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	expect_bad(buf, n, "seq 0");
	n = forge(buf, 1, "Alice!", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	expect_bad(buf, n, "bad signer");
	n = forge(buf, 1, "", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	expect_bad(buf, n, "empty signer");
	n = forge(buf, 1, "alice", 0xffffffffu, ok_body, sizeof(ok_body) - 1);
	expect_bad(buf, n, "body length 4 GiB");
	n = forge(buf, 1, "alice", sizeof(ok_body) + 30, ok_body, sizeof(ok_body) - 1);
	expect_bad(buf, n, "body length past the end");
	n = forge(buf, 1, "alice", 0, "", 0);
	expect_bad(buf, n, "empty body");
	n = forge(buf, 1, "alice", 5, "[1,2]", 5);
	expect_bad(buf, n, "body an array");
	n = forge(buf, 1, "alice", 11, "{\"a\":\"b\"}  ", 11);
	expect_bad(buf, n, "no event");
	n = forge(buf, 1, "alice", 16, "{\"event\":\"x\0\"} ", 16);
	expect_bad(buf, n, "NUL in body");
	n = forge(buf, 1, "alice", 14, "{\"event\":\"\xff\"}", 14);
	expect_bad(buf, n, "invalid UTF-8");
	n = forge(buf, 1, "alice", 26, "{\"event\":\"x\",\"event\":\"y\"}", 26);
	expect_bad(buf, n, "duplicate keys");
	/* too large a body */
	memset(body, ' ', sizeof(body));
	memcpy(body, ok_body, sizeof(ok_body) - 1);
	n = forge(buf, 1, "alice", KLEDGER_BODY_MAX + 1, body, KLEDGER_BODY_MAX + 1);
	expect_bad(buf, n, "body one byte too large");
	/* deep nesting inside the size limit: refused or parsed, never a crash */
	{
		size_t o = 0;

		o += (size_t)sprintf(body, "{\"event\":\"x\",\"a\":");
		for (int i = 0; i < 3000; i++)
			body[o++] = '[';
		for (int i = 0; i < 3000; i++)
			body[o++] = ']';
		body[o++] = '}';
		n = forge(buf, 1, "alice", (uint32_t)o, body, o);
		if (kledger_rec_parse(buf, n, &r, why, sizeof(why)) == 0)
			kledger_rec_clear(&r);
	}
	/* length field not matching the file */
	n = forge(buf, 1, "alice", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	kput_le32(buf + 4, (uint32_t)n - 1);
	expect_bad(buf, n, "length field");
	/* wrong version */
	n = forge(buf, 1, "alice", sizeof(ok_body) - 1, ok_body, sizeof(ok_body) - 1);
	buf[3] = 2;
	expect_bad(buf, n, "version 2");
	expect_bad(buf, KLEDGER_REC_MAX + 1, "over the maximum size");
}

static void test_random_garbage(void **state)
{
	uint8_t buf[1024];
	struct kledger_rec r;
	char why[160];

	(void)state;
	for (uint32_t i = 0; i < 20000; i++) {
		size_t n = (i * 7919u) % sizeof(buf);

		kt_fill(buf, n, i);
		if (i % 3 == 0 && n > 8) { /* plausible prefix */
			memcpy(buf, "kLR\x01", 4);
			kput_le32(buf + 4, (uint32_t)n);
		}
		kt_check(kledger_rec_parse(buf, n, &r, why, sizeof(why)) != 0, "garbage %u parsed", i);
		kledger_rec_clear(&r);
	}
}

static struct kledger_rec rec_of(uint64_t seq, const char *signer, const char *body)
{
	struct kledger_rec r;

	memset(&r, 0, sizeof(r));
	r.seq = seq;
	r.time_ms = (int64_t)seq * 1000;
	strcpy(r.signer, signer);
	r.body = (char *)body;
	r.bodylen = strlen(body);
	return r;
}

static void test_media_fold(void **state)
{
	struct kledger_media t = { 0 };
	struct kledger_medium *m;
	struct kledger_rec r;

	(void)state;
	r = rec_of(1, "alice", body1);
	assert_int_equal(kledger_media_apply(&t, &r), 0);
	r = rec_of(2, "alice", "{\"event\":\"register\",\"medium\":\"USB-1\",\"kind\":\"hdd\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0); /* second registration: void */
	r = rec_of(3, "alice", "{\"event\":\"handover\",\"medium\":\"USB-1\",\"from\":\"山田\",\"to\":\"佐藤\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0);
	r = rec_of(4, "bk", "{\"event\":\"backup\",\"medium\":\"USB-1\",\"files\":3}");
	assert_int_equal(kledger_media_apply(&t, &r), 0);
	r = rec_of(5, "alice", "{\"event\":\"dispose\",\"medium\":\"USB-1\",\"method\":\"crush\","
			       "\"certificate_sha256\":\"ab\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0);
	r = rec_of(6, "alice", "{\"event\":\"move\",\"medium\":\"USB-1\",\"location\":\"x\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0); /* after disposal: no effect */
	r = rec_of(7, "alice", "{\"event\":\"move\",\"medium\":\"OTHER\",\"location\":\"x\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0);
	r = rec_of(8, "alice", "{\"event\":\"register\",\"medium\":\"\\u0001\"}");
	assert_int_equal(kledger_media_apply(&t, &r), 0); /* control character id: ignored */
	assert_int_equal(t.n, 1);
	m = kledger_media_find(&t, "USB-1");
	assert_non_null(m);
	assert_string_equal(m->kind, "usb");
	assert_string_equal(m->holder, "佐藤");
	assert_string_equal(m->location, "金庫");
	assert_true(m->disposed);
	assert_string_equal(m->dispose_method, "crush");
	assert_int_equal(m->backups, 1);
	assert_int_equal(m->last_backup_ms, 4000);
	assert_int_equal(m->disposed_ms, 5000);
	kledger_media_free(&t);
}

static struct kpolicy_user puser(const char *id, int role, const struct kkeys_user *k)
{
	struct kpolicy_user u;

	memset(&u, 0, sizeof(u));
	snprintf(u.id, sizeof(u.id), "%s", id);
	u.role = role;
	u.active = true;
	u.name = u.dept = u.contact = (char *)"";
	memcpy(u.box_pk, k->box_pk, 32);
	memcpy(u.sign_pk, k->sign_pk, 32);
	return u;
}

/* take-outs: the state machine, who may do which step, sealed details */
static void test_takeout_fold(void **state)
{
	struct kpolicy *p = kpolicy_new((const uint8_t *)"0123456789abcdef");
	struct kkeys_user *alice = kkeys_user_alloc(), *adm = kkeys_user_alloc(),
			  *aud = kkeys_user_alloc(), *bob = kkeys_user_alloc();
	struct kledger_takeouts t = { 0 };
	struct kledger_takeout *x;
	struct kledger_rec r;
	struct kpolicy_user u;
	char *sealed = NULL, *plain = NULL, body[8192], hex[65];
	const char *details = "{\"files\":[\"main/a\"],\"name\":\"山田花子\"}";

	(void)state;
	assert_non_null(p);
	assert_int_equal(kkeys_user_generate(alice, "alice"), 0);
	assert_int_equal(kkeys_user_generate(adm, "adm"), 0);
	assert_int_equal(kkeys_user_generate(aud, "aud"), 0);
	assert_int_equal(kkeys_user_generate(bob, "bob"), 0);
	u = puser("alice", KROLE_STAFF, alice);
	assert_int_equal(kpolicy_user_add(p, &u), 0);
	u = puser("adm", KROLE_ADMIN, adm);
	assert_int_equal(kpolicy_user_add(p, &u), 0);
	u = puser("aud", KROLE_AUDITOR, aud);
	assert_int_equal(kpolicy_user_add(p, &u), 0);
	u = puser("bob", KROLE_STAFF, bob);
	assert_int_equal(kpolicy_user_add(p, &u), 0);

	/* sealed to the requester, admins and auditors; not to other staff */
	assert_int_equal(kledger_details_seal(details, p, "alice", &sealed), 0);
	assert_null(strstr(sealed, "山田"));
	assert_int_equal(kledger_details_open(sealed, alice, &plain), 0);
	assert_string_equal(plain, details);
	free(plain);
	assert_int_equal(kledger_details_open(sealed, adm, &plain), 0);
	free(plain);
	assert_int_equal(kledger_details_open(sealed, aud, &plain), 0);
	free(plain);
	assert_int_equal(kledger_details_open(sealed, bob, &plain), KERR_NOGRANT);
	assert_null(plain);
	{
		/* alice's sealed key renamed for bob opens nothing */
		char *swapped = strdup(sealed);
		char *k = strstr(swapped, "\"alice\":");

		assert_non_null(k);
		memmove(k + 4, k + 6, strlen(k + 6) + 1);
		memcpy(k + 1, "bob", 3);
		assert_int_equal(kledger_details_open(swapped, bob, &plain), KERR_AUTH);
		free(swapped);
	}

	snprintf(body, sizeof(body), "{\"event\":\"takeout-request\",\"requester\":\"alice\","
		 "\"medium\":\"USB-1\",\"from\":100,\"until\":200,\"details\":%s}", sealed);
	r = rec_of(5, "bob", body); /* signed by someone else than the requester: void */
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(t.n, 0);
	r = rec_of(7, "alice", body);
	kt_fill(r.hash, 32, 9);
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(t.n, 1);
	assert_non_null(x = kledger_takeout_find(&t, "T7"));
	assert_int_equal(x->state, KTO_PENDING);
	khex_encode(hex, x->req_hash, 32);
	/* self-approval, staff approval, a wrong request hash: void */
	snprintf(body, sizeof(body), "{\"event\":\"takeout-approve\",\"takeout\":\"T7\",\"request\":\"%s\"}", hex);
	r = rec_of(8, "alice", body);
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	r = rec_of(9, "bob", body);
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	r = rec_of(10, "adm", "{\"event\":\"takeout-approve\",\"takeout\":\"T7\",\"request\":\"00\"}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_PENDING);
	/* export before approval: void */
	r = rec_of(11, "alice", "{\"event\":\"takeout-export\",\"takeout\":\"T7\",\"vault_id\":\"ab\"}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_PENDING);
	r = rec_of(12, "adm", body);
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_APPROVED);
	assert_string_equal(x->approved_by, "adm");
	/* a reject after the approval changes nothing */
	snprintf(body, sizeof(body), "{\"event\":\"takeout-reject\",\"takeout\":\"T7\",\"request\":\"%s\",\"reason\":\"no\"}", hex);
	r = rec_of(13, "adm", body);
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_APPROVED);
	/* only the requester exports */
	r = rec_of(14, "adm", "{\"event\":\"takeout-export\",\"takeout\":\"T7\",\"vault_id\":\"ab\"}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_APPROVED);
	r = rec_of(15, "alice", "{\"event\":\"takeout-export\",\"takeout\":\"T7\",\"vault_id\":\"ab\",\"files\":3,\"bytes\":10}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_EXPORTED);
	assert_int_equal(x->export_files, 3);
	assert_false(kledger_takeout_overdue(x, 199));
	assert_true(kledger_takeout_overdue(x, 200));
	/* bob may not close it; alice may */
	r = rec_of(16, "bob", "{\"event\":\"takeout-close\",\"takeout\":\"T7\"}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_EXPORTED);
	r = rec_of(17, "alice", "{\"event\":\"takeout-close\",\"takeout\":\"T7\",\"audit_segments\":2}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_CLOSED);
	assert_int_equal(x->audit_segments, 2);
	assert_false(kledger_takeout_overdue(x, 1000));
	r = rec_of(18, "adm", "{\"event\":\"takeout-lost\",\"takeout\":\"T7\"}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(x->state, KTO_CLOSED);
	/* hostile bodies: ignored, never a crash */
	r = rec_of(19, "alice", "{\"event\":\"takeout-request\",\"requester\":\"alice\",\"medium\":\"../x\",\"from\":1,\"until\":2,\"details\":{}}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	r = rec_of(20, "alice", "{\"event\":\"takeout-request\",\"requester\":\"alice\",\"medium\":\"M\",\"from\":3,\"until\":2,\"details\":{}}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	r = rec_of(21, "alice", "{\"event\":\"takeout-close\",\"takeout\":7}");
	assert_int_equal(kledger_takeout_apply(&t, p, &r), 0);
	assert_int_equal(t.n, 1);
	assert_int_equal(kledger_details_open("{\"to\":{\"alice\":\"!!\"},\"nonce\":\"x\",\"ct\":\"y\"}", alice, &plain), KERR_FORMAT);
	assert_int_equal(kledger_details_open("[]", alice, &plain), KERR_FORMAT);
	kledger_takeouts_free(&t);
	free(sealed);
	kkeys_user_free(alice);
	kkeys_user_free(adm);
	kkeys_user_free(aud);
	kkeys_user_free(bob);
	kpolicy_free(p);
}

static void test_text_checks(void **state)
{
	char longs[KLEDGER_TEXT_MAX + 2];

	(void)state;
	assert_true(kledger_id_valid("USB-001_a.b"));
	assert_false(kledger_id_valid(""));
	assert_false(kledger_id_valid("-x"));
	assert_false(kledger_id_valid("a/b"));
	assert_false(kledger_id_valid("a b"));
	assert_true(kledger_text_valid("金庫 A-3"));
	assert_false(kledger_text_valid("a\nb"));
	assert_false(kledger_text_valid("\xff\xfe"));
	assert_false(kledger_text_valid(""));
	memset(longs, 'a', sizeof(longs) - 1);
	longs[sizeof(longs) - 1] = 0;
	assert_false(kledger_text_valid(longs));
	longs[KLEDGER_TEXT_MAX] = 0;
	assert_true(kledger_text_valid(longs));
	assert_int_equal(kledger_kind_from_name("tape"), KMEDIA_TAPE);
	assert_int_equal(kledger_kind_from_name("floppy"), -1);
}

static void test_manifest_tail_and_paths(void **state)
{
	char text[512], hex[129];
	uint8_t sig[64], got[64];
	size_t sl;

	(void)state;
	kt_fill(sig, 64, 9);
	khex_encode(hex, sig, 64);
	snprintf(text, sizeof(text), "{\"format\":\"x\"}\ned25519:%s\n", hex);
	assert_int_equal(kbackup_manifest_split((uint8_t *)text, strlen(text), &sl, got), 0);
	assert_int_equal(sl, strlen("{\"format\":\"x\"}\n"));
	assert_memory_equal(got, sig, 64);
	text[strlen(text) - 1] = 'x';
	assert_int_equal(kbackup_manifest_split((uint8_t *)text, strlen(text), &sl, got), KERR_FORMAT);
	snprintf(text, sizeof(text), "{}\ned25519:%.127sg\n", hex);
	assert_int_equal(kbackup_manifest_split((uint8_t *)text, strlen(text), &sl, got), KERR_FORMAT);
	assert_int_equal(kbackup_manifest_split((uint8_t *)"ed25519:", 8, &sl, got), KERR_FORMAT);
	assert_true(kbackup_path_valid("data/ab/kinko.diriv"));
	assert_true(kbackup_path_valid("kinko.vault"));
	assert_false(kbackup_path_valid(""));
	assert_false(kbackup_path_valid("/etc/passwd"));
	assert_false(kbackup_path_valid("data/../../x"));
	assert_false(kbackup_path_valid("data//x"));
	assert_false(kbackup_path_valid("data/./x"));
	assert_false(kbackup_path_valid("data/x/"));
	assert_false(kbackup_path_valid(".."));
}

static void test_seen_mark(void **state)
{
	char dir[] = "/tmp/kinko-ut-seen-XXXXXX", path[256];
	uint8_t vid[16], h[32], got[32];
	uint64_t seq;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	setenv("KINKO_STATE_DIR", dir, 1);
	kt_fill(vid, 16, 5);
	kt_fill(h, 32, 6);
	assert_int_equal(kledger_seen_get(vid, &seq, got), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(kledger_seen_set(vid, 7, h, true), 0);
	assert_int_equal(kledger_seen_get(vid, &seq, got), 0);
	assert_int_equal(seq, 7);
	assert_memory_equal(got, h, 32);
	h[0] ^= 1;
	assert_int_equal(kledger_seen_set(vid, 5, h, true), 0); /* raise only */
	assert_int_equal(kledger_seen_get(vid, &seq, got), 0);
	assert_int_equal(seq, 7);
	assert_int_not_equal(got[0], h[0]);
	assert_int_equal(kledger_seen_set(vid, 5, h, false), 0); /* a restore */
	assert_int_equal(kledger_seen_get(vid, &seq, got), 0);
	assert_int_equal(seq, 5);
	assert_memory_equal(got, h, 32);
	/* a damaged state file is an error, not a zero */
	{
		char hex[33];

		khex_encode(hex, vid, 16);
		snprintf(path, sizeof(path), "%s/%s.ledger", dir, hex);
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("12 nothex\n", f);
	fclose(f);
	assert_int_equal(kledger_seen_get(vid, &seq, got), KERR_FORMAT);
	assert_int_equal(kledger_seen_set(vid, 0, h, false), 0); /* forget */
	assert_int_equal(kledger_seen_get(vid, &seq, got), 0);
	assert_int_equal(seq, 0);
	assert_int_equal(rmdir(dir), 0);
	unsetenv("KINKO_STATE_DIR");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_every_bit),
		cmocka_unit_test(test_truncated_and_trailing),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_random_garbage),
		cmocka_unit_test(test_media_fold),
		cmocka_unit_test(test_takeout_fold),
		cmocka_unit_test(test_text_checks),
		cmocka_unit_test(test_manifest_tail_and_paths),
		cmocka_unit_test(test_seen_mark),
	};

	return cmocka_run_group_tests_name("ledger", tests, kt_group_setup, NULL);
}
