/* kinko format: every on-disk byte. Parse and serialize only, no decisions.
 * The byte layouts are specified in man/kinko-format.5; keep both in step. */
#ifndef KINKO_FORMAT_H
#define KINKO_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "kinko/crypto.h"

#define KFORMAT_VERSION 1
#define KFORMAT_ID_BYTES 16      /* vault id, compartment id, file id, dir iv */
#define KFORMAT_BIND_BYTES 16
#define KFORMAT_MAC_BYTES 16
#define KFORMAT_USERID_MAX 32
#define KFORMAT_NAME_MAX 255     /* plaintext name bytes (NAME_MAX) */
#define KFORMAT_BACKING_NAME_MAX 255
#define KFORMAT_ENCNAME_MAX 400  /* longest base64url encrypted name + NUL */

/* ---------------- per-epoch key schedule ---------------- */
/* derived from one 32-byte epoch key; lives in secure memory */
struct kformat_epoch_keys {
	uint32_t epoch;
	uint8_t content[KCRYPTO_KEYBYTES];   /* per-file keys derive from it */
	uint8_t names[KCRYPTO_SIV_KEYBYTES]; /* AES-256-SIV names, xattr names */
	uint8_t meta[KCRYPTO_KEYBYTES];      /* MACs of file headers and dir IV files */
};
int kformat_epoch_keys_derive(struct kformat_epoch_keys *k, uint32_t epoch,
			      const uint8_t epoch_key[KCRYPTO_KEYBYTES]) W_UNUSED;
/* key commitment published in the signed policy */
int kformat_epoch_commitment(uint8_t out[32], const uint8_t epoch_key[32], const uint8_t vault_id[16],
			     const uint8_t comp_id[16], uint32_t epoch) W_UNUSED;
/* per-file content key */
int kformat_file_key(uint8_t out[32], const struct kformat_epoch_keys *k,
		     const uint8_t file_id[16]) W_UNUSED;

/* ---------------- content blocks ---------------- */
#define KFORMAT_BS 4096u
#define KFORMAT_FHDR_LEN 76u
struct kformat_geom {
	int suite;
	uint32_t nonce;    /* 12 (GCM) or 24 (XChaCha) */
	uint32_t overhead; /* nonce + tag */
	uint32_t cbs;      /* ciphertext block size = nonce + 4096 + tag */
};
int kformat_geom_init(struct kformat_geom *g, int suite) W_UNUSED;
/* plaintext size of a backing file of cipher_size bytes; *bad set if the
 * size cannot come from kinko (a truncated or padded file) */
uint64_t kformat_plain_size(const struct kformat_geom *g, uint64_t cipher_size, bool *bad);
uint64_t kformat_cipher_size(const struct kformat_geom *g, uint64_t plain_size);
static inline uint64_t kformat_block_off(const struct kformat_geom *g, uint64_t blockno)
{
	return KFORMAT_FHDR_LEN + blockno * g->cbs;
}
static inline uint64_t kformat_nblocks(uint64_t plain_size)
{
	return (plain_size + KFORMAT_BS - 1) / KFORMAT_BS;
}
/* AD = file_id(16) || blockno(u64 LE) || last(u8) */
#define KFORMAT_BLOCK_ADLEN 25
void kformat_block_ad(uint8_t ad[KFORMAT_BLOCK_ADLEN], const uint8_t file_id[16], uint64_t blockno,
		      bool last);
/* encrypt one block of ptlen (1..4096) bytes into out (ptlen + overhead) */
int kformat_block_seal(const struct kformat_geom *g, const uint8_t fkey[32],
		       const uint8_t file_id[16], uint64_t blockno, bool last, const uint8_t *pt,
		       size_t ptlen, uint8_t *out) W_UNUSED;
/* the same with a nonce chosen by the caller (g->nonce bytes, never reused:
 * callers draw many at once from the DRBG) */
int kformat_block_seal_nonce(const struct kformat_geom *g, const uint8_t fkey[32],
			     const uint8_t file_id[16], uint64_t blockno, bool last,
			     const uint8_t *pt, size_t ptlen, const uint8_t *nonce,
			     uint8_t *out) W_UNUSED;
/* decrypt one block of inlen bytes (overhead+1 .. cbs); pt gets inlen - overhead bytes */
int kformat_block_open(const struct kformat_geom *g, const uint8_t fkey[32],
		       const uint8_t file_id[16], uint64_t blockno, bool last, const uint8_t *in,
		       size_t inlen, uint8_t *pt) W_UNUSED;

/* ---------------- file header ---------------- */
#define KFORMAT_FHDR_LINKED 0x0001u /* more than one name: name binding not enforced */
#define KFORMAT_FHDR_KNOWN_FLAGS (KFORMAT_FHDR_LINKED)
struct kformat_fhdr {
	uint8_t suite;
	uint16_t flags;
	uint32_t epoch;
	uint8_t file_id[KFORMAT_ID_BYTES];
	uint8_t bind[KFORMAT_BIND_BYTES];
	uint8_t bind_prev[KFORMAT_BIND_BYTES]; /* all zero unless a rename is in progress */
};
/* structure only (magic, version, flags); the MAC needs the epoch's keys */
int kformat_fhdr_parse(const uint8_t *buf, size_t len, struct kformat_fhdr *h) W_UNUSED;
int kformat_fhdr_verify(const uint8_t *buf, size_t len, const struct kformat_epoch_keys *k) W_UNUSED;
int kformat_fhdr_serialize(const struct kformat_fhdr *h, const struct kformat_epoch_keys *k,
			   uint8_t out[KFORMAT_FHDR_LEN]) W_UNUSED;
/* binding of an entry to its place: BLAKE2b-128(parent_iv || backing name) */
int kformat_binding(uint8_t out[KFORMAT_BIND_BYTES], const uint8_t parent_iv[16],
		    const char *backing_name) W_UNUSED;
bool kformat_binding_is_zero(const uint8_t b[KFORMAT_BIND_BYTES]);

/* ---------------- directory IV file ---------------- */
#define KFORMAT_DIRIV_NAME "kinko.diriv"
#define KFORMAT_DIRIV_LEN 72u
struct kformat_diriv {
	uint32_t epoch; /* names in this directory use this epoch's name key */
	uint8_t iv[KFORMAT_ID_BYTES];
	uint8_t bind[KFORMAT_BIND_BYTES];
	uint8_t bind_prev[KFORMAT_BIND_BYTES];
};
int kformat_diriv_parse(const uint8_t *buf, size_t len, struct kformat_diriv *d) W_UNUSED;
int kformat_diriv_verify(const uint8_t *buf, size_t len, const struct kformat_epoch_keys *k) W_UNUSED;
int kformat_diriv_serialize(const struct kformat_diriv *d, const struct kformat_epoch_keys *k,
			    uint8_t out[KFORMAT_DIRIV_LEN]) W_UNUSED;

/* ---------------- names ---------------- */
#define KFORMAT_LONGNAME_PREFIX "kinko.ln."
#define KFORMAT_LONGNAME_SUFFIX ".name"
/* valid plaintext name: 1..255 bytes, no '/', no NUL, not "." or ".." */
bool kformat_name_valid(const char *name, size_t len);
/* Encrypt a plaintext name for a directory. backing gets the name used on disk
 * (NUL-terminated, <= 255 bytes). If the encoded name is longer than 255 bytes,
 * *is_long is set, backing is "kinko.ln.<hash>" and full (if not NULL, size
 * KFORMAT_ENCNAME_MAX) receives the full encoded name for the sidecar file. */
int kformat_name_encrypt(const struct kformat_epoch_keys *k, const uint8_t dir_iv[16],
			 const char *name, size_t len, char backing[256], bool *is_long,
			 char *full) W_UNUSED;
/* decrypt an encoded (non-long) name; out has room for 256 bytes; NUL-terminated */
int kformat_name_decrypt(const struct kformat_epoch_keys *k, const uint8_t dir_iv[16],
			 const char *enc, size_t enclen, char out[256], size_t *outlen) W_UNUSED;
/* the long-name backing name for a full encoded name */
int kformat_longname_backing(char backing[256], const char *full, size_t fulllen) W_UNUSED;
enum kformat_entry_kind {
	KFORMAT_ENTRY_NAME,     /* an encrypted short name */
	KFORMAT_ENTRY_LONG,     /* kinko.ln.<hash>: needs its sidecar */
	KFORMAT_ENTRY_SIDECAR,  /* kinko.ln.<hash>.name */
	KFORMAT_ENTRY_INTERNAL, /* kinko.diriv, temporary files */
	KFORMAT_ENTRY_FOREIGN,  /* anything else: not made by kinko */
};
enum kformat_entry_kind kformat_entry_classify(const char *backing);

/* ---------------- symlink targets ---------------- */
/* The sealed target, base64url(epoch u32 || nonce || ct || tag), is the
 * backing symlink's own target when it fits (KFORMAT_SYMLINK_MAX). A longer
 * one (targets of about 3,000 bytes and up) lives in the side file
 * <compartment>/kinko.lt/<32 hex> and the backing symlink's target is
 * "kinko.lt:" followed by those 32 hex digits: the first 16 bytes of the
 * SHA-256 of the side file's content. ':' and '.' are not base64url. */
#define KFORMAT_SYMLINK_MAX 4095        /* backing symlink target length limit */
#define KFORMAT_SYMLINK_TARGET_MAX 4095 /* plaintext target (PATH_MAX - 1) */
#define KFORMAT_SYMLINK_ENC_MAX 5600    /* sealed and encoded, inline or in a side file */
#define KFORMAT_LT_DIR "kinko.lt"
#define KFORMAT_LT_REF "kinko.lt:"
#define KFORMAT_LT_REFLEN (sizeof(KFORMAT_LT_REF) - 1 + 32)
/* out: base64url(epoch u32 || nonce || ct || tag) NUL-terminated */
int kformat_symlink_encrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
			    const char *target, size_t tlen, char *out, size_t outmax) W_UNUSED;
int kformat_symlink_epoch(const char *enc, uint32_t *epoch) W_UNUSED;
int kformat_symlink_decrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
			    const char *enc, char *out, size_t outmax, size_t *outlen) W_UNUSED;
/* Side files live in base/cdir/kinko.lt: cdir is the compartment's
 * directory under base ("." when base is that directory). */
/* the backing target for enc: enc itself, or (too long) a reference to a new
 * side file, written and synced; out holds KFORMAT_SYMLINK_MAX + 1 bytes */
int kformat_symlink_store(int base, const char *cdir, const char *enc, char *out) W_UNUSED;
bool kformat_symlink_is_ref(const char *backing_target);
/* the sealed target a backing target stands for: itself, or the content of
 * the side file it refers to (checked against the hash in its name); out
 * holds KFORMAT_SYMLINK_ENC_MAX + 1 bytes */
int kformat_symlink_load(int base, const char *cdir, const char *backing_target, char *out) W_UNUSED;
/* remove the side file a reference names (nothing for an inline target) */
void kformat_symlink_forget(int base, const char *cdir, const char *backing_target);
/* A side file goes with the last link of its symlink (hard links share
 * one). kformat_lt_hold before a name is removed or replaced: if dirfd/name
 * is a symlink with a reference (st: its lstat, or NULL), keeps an O_PATH
 * fd of it. kformat_lt_release after: removes the side file if no link is
 * left, and closes the fd. */
struct kformat_lt_hold {
	int fd;
	char ref[KFORMAT_LT_REFLEN + 1];
};
void kformat_lt_hold(struct kformat_lt_hold *h, int dirfd, const char *name, const struct stat *st);
void kformat_lt_release(struct kformat_lt_hold *h, int base, const char *cdir);
/* lt: is name a side file's name (32 lowercase hex digits)? */
bool kformat_lt_name_valid(const char *name);

/* ---------------- xattrs ---------------- */
#define KFORMAT_XATTR_PREFIX "user.kk" /* user.kk<epoch>.<b64url(SIV(name))> */
int kformat_xattr_name_encrypt(const struct kformat_epoch_keys *k, const char *name, char *out,
			       size_t outmax) W_UNUSED;
/* returns 0 and sets *epoch/enc offset if the backing name is a kinko xattr */
int kformat_xattr_name_epoch(const char *backing, uint32_t *epoch) W_UNUSED;
int kformat_xattr_name_decrypt(const struct kformat_epoch_keys *k, const char *backing, char *out,
			       size_t outmax) W_UNUSED;
size_t kformat_xattr_value_overhead(const struct kformat_geom *g);
int kformat_xattr_value_encrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
				const char *backing_name, const uint8_t *v, size_t vlen,
				uint8_t *out) W_UNUSED;
int kformat_xattr_value_decrypt(const struct kformat_geom *g, const struct kformat_epoch_keys *k,
				const char *backing_name, const uint8_t *in, size_t inlen,
				uint8_t *out) W_UNUSED;

/* ---------------- vault header (kinko.vault) ---------------- */
#define KFORMAT_VAULT_FILE "kinko.vault"
#define KFORMAT_VAULT_LEN 140u
struct kformat_vault {
	uint16_t version;
	uint32_t features;
	uint8_t vault_id[16];
	uint8_t suite;
	uint8_t root_pk[KCRYPTO_SIGN_PKBYTES];
	int64_t created;
};
/* parse and check the self-signature; the root key is authenticated by the user's key file */
int kformat_vault_parse(const uint8_t *buf, size_t len, struct kformat_vault *v) W_UNUSED;
int kformat_vault_serialize(const struct kformat_vault *v, const uint8_t root_sk[64],
			    uint8_t out[KFORMAT_VAULT_LEN]) W_UNUSED;

/* ---------------- user key file (keys/<id>.key) ---------------- */
#define KFORMAT_KDF_ARGON2ID 1
#define KFORMAT_KEY_SECRET_LEN 64 /* x25519 sk || ed25519 seed */
struct kformat_keyfile {
	uint16_t flags;
	uint8_t vault_id[16];
	uint8_t root_pk[32];
	char user[KFORMAT_USERID_MAX + 1];
	uint8_t box_pk[32];
	uint8_t sign_pk[32];
	uint8_t kdf_alg;
	uint32_t m_kib, t_cost, p_cost;
	uint8_t salt[KCRYPTO_SALTBYTES];
	/* extensions (TLVs inside the authenticated part) */
	int64_t pw_changed;        /* when the password was last set (0 = unknown) */
	bool enrolment;            /* wrapped under a one-time enrolment secret */
	const uint8_t *cert;       /* second factor: X.509 certificate (DER), or NULL */
	size_t certlen;
	const uint8_t *factor;     /* factor secret sealed to the certificate */
	size_t factorlen;
	uint8_t nonce[KCRYPTO_WRAP_NONCEBYTES];
	uint8_t wrapped[KFORMAT_KEY_SECRET_LEN + KCRYPTO_TAGBYTES];
	size_t ad_len; /* bytes of the file covered as AD (everything before the nonce) */
};
/* key file extension TLVs: type u16 (bit 15 = critical), length u16, value */
#define KFORMAT_KEXT_CRITICAL 0x8000u
#define KFORMAT_KEXT_PWCHANGED 0x0001u            /* u64 unix seconds */
#define KFORMAT_KEXT_ENROLMENT 0x8002u            /* empty: must change password */
#define KFORMAT_KEXT_CERT 0x8003u                 /* DER certificate */
#define KFORMAT_KEXT_FACTOR 0x8004u               /* sealed factor secret */
int kformat_keyfile_parse(const uint8_t *buf, size_t len, struct kformat_keyfile *kf) W_UNUSED;
/* serialize the public part (AD); then the caller wraps with AD = out[0..adlen) */
int kformat_keyfile_serialize_ad(const struct kformat_keyfile *kf, struct kbuf *out) W_UNUSED;
int kformat_keyfile_serialize_tail(const struct kformat_keyfile *kf, struct kbuf *out) W_UNUSED;

/* ---------------- grant file (grants/<comp>/<epoch>/<user>.grant) ---------------- */
struct kformat_grant {
	uint8_t vault_id[16];
	uint8_t comp_id[16];
	uint32_t epoch;
	char user[KFORMAT_USERID_MAX + 1];
	uint8_t commitment[32];
	uint8_t sealed[KCRYPTO_KEYBYTES + KCRYPTO_SEALBYTES];
};
int kformat_grant_parse(const uint8_t *buf, size_t len, struct kformat_grant *g) W_UNUSED;
int kformat_grant_serialize(const struct kformat_grant *g, struct kbuf *out) W_UNUSED;

/* ---------------- policy envelope (policy/policy.<serial>) ---------------- */
#define KFORMAT_POLICY_BODY_MAX (16u << 20)
struct kformat_policy_env {
	uint8_t vault_id[16];
	uint64_t serial;
	const uint8_t *body; /* points into the parsed buffer */
	size_t body_len;
	char signer[KFORMAT_USERID_MAX + 1];
	uint8_t signer_sig[64];
	uint8_t root_sig[64];
	size_t signed_len;   /* bytes covered by signer_sig */
	size_t root_len;     /* bytes covered by root_sig */
};
int kformat_policy_parse(const uint8_t *buf, size_t len, struct kformat_policy_env *p) W_UNUSED;
/* verify both signatures (signer_pk: the admin's Ed25519 key named in the body) */
int kformat_policy_verify_root(const uint8_t *buf, const struct kformat_policy_env *p,
			       const uint8_t root_pk[32]) W_UNUSED;
int kformat_policy_verify_signer(const uint8_t *buf, const struct kformat_policy_env *p,
				 const uint8_t signer_pk[32]) W_UNUSED;
int kformat_policy_serialize(const uint8_t vault_id[16], uint64_t serial, const char *body,
			     size_t body_len, const char *signer, const uint8_t signer_sk[64],
			     const uint8_t root_sk[64], struct kbuf *out) W_UNUSED;

#endif
