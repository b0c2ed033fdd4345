// SPDX-License-Identifier: GPL-2.0-or-later
/* Vault header, user key file, grant file, policy envelope. Each parser reads
 * through one bounded kbuf and refuses trailing bytes, unknown versions and
 * unknown flags. */
#include <string.h>

#include "kinko/format.h"

/* ---------------- vault header ---------------- */

static const char vault_magic[8] = { 'K', 'I', 'N', 'K', 'O', 'V', 'L', 'T' };
static const char key_magic[8] = { 'K', 'I', 'N', 'K', 'O', 'K', 'E', 'Y' };
static const char grant_magic[8] = { 'K', 'I', 'N', 'K', 'O', 'G', 'R', 'T' };
static const char policy_magic[8] = { 'K', 'I', 'N', 'K', 'O', 'P', 'O', 'L' };

#define VAULT_SIGNED (KFORMAT_VAULT_LEN - KCRYPTO_SIGBYTES)
static const char vault_ctx[16] = "kinko-vault-v1";

static int check_magic_version(struct kbuf *b, const char magic[8])
{
	const uint8_t *m;
	uint16_t ver;
	int r;

	if ((r = kbuf_get_ptr(b, &m, 8)) != 0)
		return r;
	if (memcmp(m, magic, 8) != 0)
		return KERR_FORMAT;
	if ((r = kbuf_get_u16(b, &ver)) != 0)
		return r;
	if (ver > KFORMAT_VERSION)
		return KERR_VERSION;
	if (ver != KFORMAT_VERSION)
		return KERR_FORMAT;
	return 0;
}

static int sign_ctx(uint8_t sig[64], const char ctx[16], const uint8_t *msg, size_t len,
		    const uint8_t sk[64])
{
	struct kbuf b;
	int r;

	kbuf_init_writer(&b);
	if ((r = kbuf_put_raw(&b, ctx, 16)) == 0 && (r = kbuf_put_raw(&b, msg, len)) == 0)
		r = kcrypto_sign(sig, b.p, b.len, sk);
	kbuf_free(&b);
	return r;
}

static int verify_ctx(const uint8_t sig[64], const char ctx[16], const uint8_t *msg, size_t len,
		      const uint8_t pk[32])
{
	struct kbuf b;
	int r;

	kbuf_init_writer(&b);
	if ((r = kbuf_put_raw(&b, ctx, 16)) == 0 && (r = kbuf_put_raw(&b, msg, len)) == 0)
		r = kcrypto_verify(sig, b.p, b.len, pk);
	kbuf_free(&b);
	return r;
}

int kformat_vault_parse(const uint8_t *buf, size_t len, struct kformat_vault *v)
{
	struct kbuf b;
	uint16_t hlen;
	uint64_t created;
	const uint8_t *rsv, *sig;
	int r;

	memset(v, 0, sizeof(*v));
	kbuf_init_reader(&b, buf, len);
	if ((r = check_magic_version(&b, vault_magic)) != 0)
		return r;
	v->version = KFORMAT_VERSION;
	if ((r = kbuf_get_u16(&b, &hlen)) != 0 || (r = kbuf_get_u32(&b, &v->features)) != 0)
		return r;
	if (hlen != KFORMAT_VAULT_LEN || len != KFORMAT_VAULT_LEN)
		return KERR_FORMAT;
	if (v->features != 0)
		return KERR_VERSION;
	if ((r = kbuf_get_raw(&b, v->vault_id, 16)) != 0 || (r = kbuf_get_u8(&b, &v->suite)) != 0 ||
	    (r = kbuf_get_ptr(&b, &rsv, 3)) != 0 || (r = kbuf_get_raw(&b, v->root_pk, 32)) != 0 ||
	    (r = kbuf_get_u64(&b, &created)) != 0 || (r = kbuf_get_ptr(&b, &sig, 64)) != 0 ||
	    (r = kbuf_expect_end(&b)) != 0)
		return r;
	if (rsv[0] | rsv[1] | rsv[2])
		return KERR_FORMAT;
	if (kcrypto_suite_noncebytes(v->suite) == 0)
		return KERR_VERSION;
	v->created = (int64_t)created;
	return verify_ctx(sig, vault_ctx, buf, VAULT_SIGNED, v->root_pk);
}

int kformat_vault_serialize(const struct kformat_vault *v, const uint8_t root_sk[64],
			    uint8_t out[KFORMAT_VAULT_LEN])
{
	struct kbuf b;
	static const uint8_t zero[3];
	int r;

	kbuf_init_reader(&b, out, 0);
	b.cap = KFORMAT_VAULT_LEN;
	if ((r = kbuf_put_raw(&b, vault_magic, 8)) != 0 || (r = kbuf_put_u16(&b, KFORMAT_VERSION)) != 0 ||
	    (r = kbuf_put_u16(&b, KFORMAT_VAULT_LEN)) != 0 || (r = kbuf_put_u32(&b, 0)) != 0 ||
	    (r = kbuf_put_raw(&b, v->vault_id, 16)) != 0 || (r = kbuf_put_u8(&b, v->suite)) != 0 ||
	    (r = kbuf_put_raw(&b, zero, 3)) != 0 || (r = kbuf_put_raw(&b, v->root_pk, 32)) != 0 ||
	    (r = kbuf_put_u64(&b, (uint64_t)v->created)) != 0)
		return r;
	if (b.len != VAULT_SIGNED)
		return KERR_FORMAT;
	return sign_ctx(out + VAULT_SIGNED, vault_ctx, out, VAULT_SIGNED, root_sk);
}

/* ---------------- key file ---------------- */

#define KEYFILE_EXT_MAX 65536

/* extensions: each type at most once; unknown critical types are refused */
static int keyfile_parse_ext(const uint8_t *ext, size_t extlen, struct kformat_keyfile *kf)
{
	struct kbuf e;
	uint32_t seen = 0;

	kbuf_init_reader(&e, ext, extlen);
	while (kbuf_remaining(&e)) {
		uint16_t type, len;
		const uint8_t *v;
		int r;

		if ((r = kbuf_get_u16(&e, &type)) != 0 || (r = kbuf_get_u16(&e, &len)) != 0 ||
		    (r = kbuf_get_ptr(&e, &v, len)) != 0)
			return r;
		if ((type & 0x7fff) < 32) {
			if (seen & (1u << (type & 0x7fff)))
				return KERR_FORMAT;
			seen |= 1u << (type & 0x7fff);
		}
		switch (type) {
		case KFORMAT_KEXT_PWCHANGED:
			if (len != 8)
				return KERR_FORMAT;
			kf->pw_changed = (int64_t)kget_le64(v);
			break;
		case KFORMAT_KEXT_ENROLMENT:
			if (len != 0)
				return KERR_FORMAT;
			kf->enrolment = true;
			break;
		case KFORMAT_KEXT_CERT:
			if (len == 0)
				return KERR_FORMAT;
			kf->cert = v;
			kf->certlen = len;
			break;
		case KFORMAT_KEXT_FACTOR:
			if (len == 0)
				return KERR_FORMAT;
			kf->factor = v;
			kf->factorlen = len;
			break;
		default:
			if (type & KFORMAT_KEXT_CRITICAL)
				return KERR_VERSION;
		}
	}
	if (!kf->cert != !kf->factor)
		return KERR_FORMAT;
	return 0;
}

static int put_tlv(struct kbuf *b, uint16_t type, const void *v, size_t len)
{
	int r;

	if (len > UINT16_MAX)
		return KERR_USAGE;
	if ((r = kbuf_put_u16(b, type)) != 0 || (r = kbuf_put_u16(b, (uint16_t)len)) != 0)
		return r;
	return kbuf_put_raw(b, v, len);
}

int kformat_keyfile_parse(const uint8_t *buf, size_t len, struct kformat_keyfile *kf)
{
	struct kbuf b;
	const uint8_t *ext;
	uint32_t extlen, wlen;
	int r;

	memset(kf, 0, sizeof(*kf));
	kbuf_init_reader(&b, buf, len);
	if ((r = check_magic_version(&b, key_magic)) != 0)
		return r;
	if ((r = kbuf_get_u16(&b, &kf->flags)) != 0)
		return r;
	if (kf->flags != 0)
		return KERR_VERSION;
	if ((r = kbuf_get_raw(&b, kf->vault_id, 16)) != 0 ||
	    (r = kbuf_get_raw(&b, kf->root_pk, 32)) != 0 ||
	    (r = kbuf_get_str8(&b, kf->user, KFORMAT_USERID_MAX)) != 0 ||
	    (r = kbuf_get_raw(&b, kf->box_pk, 32)) != 0 ||
	    (r = kbuf_get_raw(&b, kf->sign_pk, 32)) != 0 || (r = kbuf_get_u8(&b, &kf->kdf_alg)) != 0 ||
	    (r = kbuf_get_u32(&b, &kf->m_kib)) != 0 || (r = kbuf_get_u32(&b, &kf->t_cost)) != 0 ||
	    (r = kbuf_get_u32(&b, &kf->p_cost)) != 0 ||
	    (r = kbuf_get_raw(&b, kf->salt, sizeof(kf->salt))) != 0 ||
	    (r = kbuf_get_u32(&b, &extlen)) != 0)
		return r;
	if (!kuser_id_valid(kf->user))
		return KERR_FORMAT;
	if (kf->kdf_alg != KFORMAT_KDF_ARGON2ID)
		return KERR_VERSION;
	if (extlen > KEYFILE_EXT_MAX)
		return KERR_FORMAT;
	if ((r = kbuf_get_ptr(&b, &ext, extlen)) != 0)
		return r;
	if ((r = keyfile_parse_ext(ext, extlen, kf)) != 0)
		return r;
	kf->ad_len = b.off;
	if ((r = kbuf_get_raw(&b, kf->nonce, sizeof(kf->nonce))) != 0 ||
	    (r = kbuf_get_u32(&b, &wlen)) != 0)
		return r;
	if (wlen != sizeof(kf->wrapped))
		return KERR_FORMAT;
	if ((r = kbuf_get_raw(&b, kf->wrapped, sizeof(kf->wrapped))) != 0)
		return r;
	return kbuf_expect_end(&b);
}

int kformat_keyfile_serialize_ad(const struct kformat_keyfile *kf, struct kbuf *b)
{
	int r;

	if ((r = kbuf_put_raw(b, key_magic, 8)) != 0 || (r = kbuf_put_u16(b, KFORMAT_VERSION)) != 0 ||
	    (r = kbuf_put_u16(b, 0)) != 0 || (r = kbuf_put_raw(b, kf->vault_id, 16)) != 0 ||
	    (r = kbuf_put_raw(b, kf->root_pk, 32)) != 0 || (r = kbuf_put_str8(b, kf->user)) != 0 ||
	    (r = kbuf_put_raw(b, kf->box_pk, 32)) != 0 || (r = kbuf_put_raw(b, kf->sign_pk, 32)) != 0 ||
	    (r = kbuf_put_u8(b, KFORMAT_KDF_ARGON2ID)) != 0 || (r = kbuf_put_u32(b, kf->m_kib)) != 0 ||
	    (r = kbuf_put_u32(b, kf->t_cost)) != 0 || (r = kbuf_put_u32(b, kf->p_cost)) != 0 ||
	    (r = kbuf_put_raw(b, kf->salt, sizeof(kf->salt))) != 0)
		return r;
	{
		struct kbuf e;
		uint8_t t[8];

		kbuf_init_writer(&e);
		kput_le64(t, (uint64_t)kf->pw_changed);
		if ((r = put_tlv(&e, KFORMAT_KEXT_PWCHANGED, t, 8)) == 0 && kf->enrolment)
			r = put_tlv(&e, KFORMAT_KEXT_ENROLMENT, NULL, 0);
		if (r == 0 && kf->cert)
			r = put_tlv(&e, KFORMAT_KEXT_CERT, kf->cert, kf->certlen);
		if (r == 0 && kf->factor)
			r = put_tlv(&e, KFORMAT_KEXT_FACTOR, kf->factor, kf->factorlen);
		if (r == 0 && (r = kbuf_put_u32(b, (uint32_t)e.len)) == 0)
			r = kbuf_put_raw(b, e.p, e.len);
		kbuf_free(&e);
	}
	return r;
}

int kformat_keyfile_serialize_tail(const struct kformat_keyfile *kf, struct kbuf *b)
{
	int r;

	if ((r = kbuf_put_raw(b, kf->nonce, sizeof(kf->nonce))) != 0 ||
	    (r = kbuf_put_u32(b, sizeof(kf->wrapped))) != 0 ||
	    (r = kbuf_put_raw(b, kf->wrapped, sizeof(kf->wrapped))) != 0)
		return r;
	return 0;
}

/* ---------------- grant ---------------- */

int kformat_grant_parse(const uint8_t *buf, size_t len, struct kformat_grant *g)
{
	struct kbuf b;
	uint16_t flags;
	int r;

	memset(g, 0, sizeof(*g));
	kbuf_init_reader(&b, buf, len);
	if ((r = check_magic_version(&b, grant_magic)) != 0 || (r = kbuf_get_u16(&b, &flags)) != 0)
		return r;
	if (flags != 0)
		return KERR_VERSION;
	if ((r = kbuf_get_raw(&b, g->vault_id, 16)) != 0 ||
	    (r = kbuf_get_raw(&b, g->comp_id, 16)) != 0 || (r = kbuf_get_u32(&b, &g->epoch)) != 0 ||
	    (r = kbuf_get_str8(&b, g->user, KFORMAT_USERID_MAX)) != 0 ||
	    (r = kbuf_get_raw(&b, g->commitment, 32)) != 0 ||
	    (r = kbuf_get_raw(&b, g->sealed, sizeof(g->sealed))) != 0 ||
	    (r = kbuf_expect_end(&b)) != 0)
		return r;
	if (!kuser_id_valid(g->user) || g->epoch == 0)
		return KERR_FORMAT;
	return 0;
}

int kformat_grant_serialize(const struct kformat_grant *g, struct kbuf *b)
{
	int r;

	if ((r = kbuf_put_raw(b, grant_magic, 8)) != 0 || (r = kbuf_put_u16(b, KFORMAT_VERSION)) != 0 ||
	    (r = kbuf_put_u16(b, 0)) != 0 || (r = kbuf_put_raw(b, g->vault_id, 16)) != 0 ||
	    (r = kbuf_put_raw(b, g->comp_id, 16)) != 0 || (r = kbuf_put_u32(b, g->epoch)) != 0 ||
	    (r = kbuf_put_str8(b, g->user)) != 0 || (r = kbuf_put_raw(b, g->commitment, 32)) != 0 ||
	    (r = kbuf_put_raw(b, g->sealed, sizeof(g->sealed))) != 0)
		return r;
	return 0;
}

/* ---------------- policy envelope ---------------- */

static const char policy_ctx_signer[16] = "kinko-policy-v1";
static const char policy_ctx_root[16] = "kinko-polroot-v1";

int kformat_policy_parse(const uint8_t *buf, size_t len, struct kformat_policy_env *p)
{
	struct kbuf b;
	uint16_t flags;
	uint32_t blen;
	int r;

	memset(p, 0, sizeof(*p));
	kbuf_init_reader(&b, buf, len);
	if ((r = check_magic_version(&b, policy_magic)) != 0 || (r = kbuf_get_u16(&b, &flags)) != 0)
		return r;
	if (flags != 0)
		return KERR_VERSION;
	if ((r = kbuf_get_raw(&b, p->vault_id, 16)) != 0 || (r = kbuf_get_u64(&b, &p->serial)) != 0 ||
	    (r = kbuf_get_u32(&b, &blen)) != 0)
		return r;
	if (blen == 0 || blen > KFORMAT_POLICY_BODY_MAX)
		return KERR_FORMAT;
	if ((r = kbuf_get_ptr(&b, &p->body, blen)) != 0)
		return r;
	p->body_len = blen;
	if (memchr(p->body, 0, blen))
		return KERR_FORMAT;
	if ((r = kbuf_get_str8(&b, p->signer, KFORMAT_USERID_MAX)) != 0)
		return r;
	p->signed_len = b.off;
	if ((r = kbuf_get_raw(&b, p->signer_sig, 64)) != 0)
		return r;
	p->root_len = b.off;
	if ((r = kbuf_get_raw(&b, p->root_sig, 64)) != 0 || (r = kbuf_expect_end(&b)) != 0)
		return r;
	if (!kuser_id_valid(p->signer) || p->serial == 0)
		return KERR_FORMAT;
	return 0;
}

int kformat_policy_verify_root(const uint8_t *buf, const struct kformat_policy_env *p,
			       const uint8_t root_pk[32])
{
	return verify_ctx(p->root_sig, policy_ctx_root, buf, p->root_len, root_pk);
}

int kformat_policy_verify_signer(const uint8_t *buf, const struct kformat_policy_env *p,
				 const uint8_t signer_pk[32])
{
	return verify_ctx(p->signer_sig, policy_ctx_signer, buf, p->signed_len, signer_pk);
}

int kformat_policy_serialize(const uint8_t vault_id[16], uint64_t serial, const char *body,
			     size_t body_len, const char *signer, const uint8_t signer_sk[64],
			     const uint8_t root_sk[64], struct kbuf *b)
{
	uint8_t sig[64];
	int r;

	if (body_len == 0 || body_len > KFORMAT_POLICY_BODY_MAX)
		return KERR_USAGE;
	if ((r = kbuf_put_raw(b, policy_magic, 8)) != 0 || (r = kbuf_put_u16(b, KFORMAT_VERSION)) != 0 ||
	    (r = kbuf_put_u16(b, 0)) != 0 || (r = kbuf_put_raw(b, vault_id, 16)) != 0 ||
	    (r = kbuf_put_u64(b, serial)) != 0 || (r = kbuf_put_u32(b, (uint32_t)body_len)) != 0 ||
	    (r = kbuf_put_raw(b, body, body_len)) != 0 || (r = kbuf_put_str8(b, signer)) != 0)
		return r;
	if ((r = sign_ctx(sig, policy_ctx_signer, b->p, b->len, signer_sk)) != 0 ||
	    (r = kbuf_put_raw(b, sig, 64)) != 0)
		return r;
	if ((r = sign_ctx(sig, policy_ctx_root, b->p, b->len, root_sk)) != 0 ||
	    (r = kbuf_put_raw(b, sig, 64)) != 0)
		return r;
	return 0;
}
