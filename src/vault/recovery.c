// SPDX-License-Identifier: GPL-2.0-or-later
/* The organisation's offline recovery key (break-glass). An X25519 key pair:
 * the secret is written once to a file the administrator keeps offline, the
 * public key sits in the signed policy (settings "recovery.public_key"), and
 * every epoch key is also sealed to it in recovery/<comp hex>/<epoch>.grant
 * (the grant format, user field "recovery"). With the file, an administrator
 * can give a compartment to someone again when every grantee lost their
 * password. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinko/lifecycle.h"

#define RK_LABEL "recovery"
#define RK_MAGIC "kinko-recovery-key 1"

bool kvault_recovery_pk(const struct kpolicy *p, uint8_t pk[32])
{
	json_t *j = json_object_get(p->settings, KRECOVERY_SETTING_PK);
	const char *s = json_string_value(j);

	return s && strlen(s) == 64 && khex_decode(pk, 32, s) == 0;
}

static void rpath(char *out, size_t n, const uint8_t comp[16], uint32_t epoch)
{
	char hex[33];

	khex_encode(hex, comp, 16);
	snprintf(out, n, "recovery/%s/%" PRIu32 ".grant", hex, epoch);
}

int kvault_recovery_seal(struct kvault *v, const uint8_t comp[16], uint32_t epoch,
			 const uint8_t epoch_key[32], struct kerrinfo *ei)
{
	struct kformat_grant g;
	struct kbuf b;
	uint8_t pk[32];
	char path[160], dir[160];
	int r;

	if (!kvault_recovery_pk(v->policy, pk))
		return 0;
	kbuf_init_writer(&b);
	memset(&g, 0, sizeof(g));
	memcpy(g.vault_id, v->hdr.vault_id, 16);
	memcpy(g.comp_id, comp, 16);
	g.epoch = epoch;
	snprintf(g.user, sizeof(g.user), RK_LABEL);
	rpath(path, sizeof(path), comp, epoch);
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = 0;
	if ((r = kformat_epoch_commitment(g.commitment, epoch_key, v->hdr.vault_id, comp, epoch)) != 0 ||
	    (r = kcrypto_seal(g.sealed, epoch_key, 32, pk)) != 0 ||
	    (r = kformat_grant_serialize(&g, &b)) != 0 || (r = kmkdirs_at(v->vfd, dir, 0755)) != 0)
		goto out;
	r = kfile_replace_at(v->vfd, path, b.p, b.len, 0644);
out:
	if (r)
		kerr_set(ei, path, NULL);
	kbuf_free(&b);
	return r;
}

/* the epoch key of c/epoch from its recovery seal, checked against the policy */
static int recovery_open(struct kvault *v, const struct kpolicy_comp *c, uint32_t epoch,
			 const uint8_t sk[32], const uint8_t pk[32], uint8_t key[32],
			 struct kerrinfo *ei)
{
	const struct kpolicy_epoch *pe = kpolicy_epoch_find(c, epoch);
	struct kformat_grant g;
	uint8_t *buf = NULL, cm[32];
	size_t len;
	char path[160];
	int r;

	rpath(path, sizeof(path), c->id, epoch);
	if (!pe)
		return KERR_MISMATCH;
	if ((r = kfile_read_at(v->vfd, path, 4096, &buf, &len)) != 0) {
		kerr_set(ei, path, r == -ENOENT ? "no copy of this epoch key for the recovery key" : NULL);
		return r;
	}
	r = kformat_grant_parse(buf, len, &g);
	free(buf);
	if (r == 0 && (memcmp(g.vault_id, v->hdr.vault_id, 16) || memcmp(g.comp_id, c->id, 16) ||
		       g.epoch != epoch || !kcrypto_memeq(g.commitment, pe->commitment, 32)))
		r = KERR_MISMATCH;
	if (r == 0 && (r = kcrypto_seal_open(key, g.sealed, sizeof(g.sealed), pk, sk)) != 0)
		r = KERR_AUTH;
	if (r == 0 && ((r = kformat_epoch_commitment(cm, key, v->hdr.vault_id, c->id, epoch)) != 0 ||
		       !kcrypto_memeq(cm, pe->commitment, 32)))
		r = r ? r : KERR_AUTH;
	if (r) {
		ksecmem_wipe(key, 32);
		kerr_set(ei, path, "%s", r == KERR_AUTH ? "not sealed to this recovery key (another key file?)" :
			 r == KERR_MISMATCH ? "does not match the signed policy (forged or stale)" :
			 kinko_strerror(r));
	}
	return r;
}

int kvault_recovery_load(const struct kvault *v, const char *keyfile, uint8_t **skp,
			 struct kerrinfo *ei)
{
	uint8_t *buf = NULL, *sk = NULL, vid[16], pk[32], chk[32], ppk[32];
	char *line, *save = NULL;
	bool got_v = false, got_p = false, got_s = false, magic = false;
	size_t len;
	int fd, r;

	*skp = NULL;
	fd = open(keyfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		r = -errno;
		kerr_set(ei, keyfile, NULL);
		return r == -ENOENT ? KERR_USAGE : r;
	}
	r = 0;
	if (!(buf = ksecmem_alloc(4097))) {
		close(fd);
		return -ENOMEM;
	}
	{
		ssize_t n = kpread_full(fd, buf, 4097, 0);

		if (n < 0 || n > 4096)
			r = n < 0 ? (int)n : -EFBIG;
		len = n < 0 ? 0 : (size_t)n;
	}
	close(fd);
	if (r) {
		kerr_set(ei, keyfile, "%s", r == -EFBIG ? "too large to be a recovery key file" : strerror(-r));
		goto out;
	}
	buf[len] = 0;
	r = -ENOMEM;
	if (!(sk = ksecmem_alloc(32)))
		goto out;
	r = KERR_FORMAT;
	for (line = strtok_r((char *)buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (line[0] == '#' || !line[0])
			continue;
		if (strcmp(line, RK_MAGIC) == 0)
			magic = true;
		else if (strncmp(line, "vault ", 6) == 0 && khex_decode(vid, 16, line + 6) == 0)
			got_v = true;
		else if (strncmp(line, "public ", 7) == 0 && khex_decode(pk, 32, line + 7) == 0)
			got_p = true;
		else if (strncmp(line, "secret ", 7) == 0 && khex_decode(sk, 32, line + 7) == 0)
			got_s = true;
		else
			goto bad;
	}
	if (!magic || !got_v || !got_p || !got_s)
		goto bad;
	if (kcrypto_box_pk_from_sk(chk, sk) != 0 || !kcrypto_memeq(chk, pk, 32)) {
		kerr_set(ei, keyfile, "public and secret key do not match (damaged file)");
		goto out;
	}
	if (memcmp(vid, v->hdr.vault_id, 16) != 0) {
		r = KERR_MISMATCH;
		kerr_set(ei, keyfile, "recovery key of another vault");
		goto out;
	}
	if (!kvault_recovery_pk(v->policy, ppk) || !kcrypto_memeq(ppk, pk, 32)) {
		r = KERR_MISMATCH;
		kerr_set(ei, keyfile, "not the recovery key in the signed policy (replaced by kinko recovery create --replace?)");
		goto out;
	}
	*skp = sk;
	sk = NULL;
	r = 0;
	goto out;
bad:
	kerr_set(ei, keyfile, "not a kinko recovery key file");
out:
	ksecmem_free(sk);
	ksecmem_free(buf);
	return r;
}

int kvault_recovery_create(struct kvault *v, const char *out, bool replace, size_t *uncovered,
			   struct kerrinfo *ei)
{
	uint8_t *sk = NULL, *seed = NULL, *key = NULL, pk[32], old[32];
	char hex[65], vhex[33], *text = NULL, t[32];
	int fd = -1, r;

	*uncovered = 0;
	if (!v->root_sk)
		return KERR_USAGE;
	if ((r = kvault_policy_reload(v, ei)) != 0)
		return r;
	if (kvault_recovery_pk(v->policy, old) && !replace) {
		kerr_set(ei, "policy/", "the vault already has a recovery key; --replace makes a new one (the old file then opens nothing)");
		return KERR_EXISTS;
	}
	r = -ENOMEM;
	if (!(sk = ksecmem_alloc(32)) || !(seed = ksecmem_alloc(32)) || !(key = ksecmem_alloc(32)) ||
	    !(text = ksecmem_alloc(512)))
		goto out;
	kcrypto_random(seed, 32);
	if ((r = kcrypto_box_seed_keypair(pk, sk, seed)) != 0)
		goto out;
	/* the file first: a key in the policy that nobody holds would be worse than none */
	fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		r = errno == EEXIST ? KERR_EXISTS : -errno;
		kerr_set(ei, out, errno == EEXIST ? "exists; the recovery key is written once, to a new file" : NULL);
		goto out;
	}
	khex_encode(vhex, v->hdr.vault_id, 16);
	ktime_iso(t, sizeof(t), ktime_now());
	khex_encode(hex, pk, 32);
	{
		char shex[65];
		int n;

		khex_encode(shex, sk, 32);
		n = snprintf(text, 512,
			     "# kinko recovery key of vault %s, made %s by %s.\n"
			     "# Keep it offline (paper or an offline medium, in a safe): it opens every compartment.\n"
			     RK_MAGIC "\nvault %s\npublic %s\nsecret %s\n",
			     vhex, t, v->user->id, vhex, hex, shex);
		ksecmem_wipe(shex, sizeof(shex));
		r = kwrite_all(fd, text, (size_t)n);
	}
	if (r == 0 && fsync(fd) < 0)
		r = -errno;
	close(fd);
	fd = -1;
	if (r) {
		kerr_set(ei, out, NULL);
		unlink(out);
		goto out;
	}
	json_object_set_new(v->policy->settings, KRECOVERY_SETTING_PK, json_string(hex));
	json_object_set_new(v->policy->settings, KRECOVERY_SETTING_CREATED, json_string(t));
	/* seal every epoch key the administrator holds */
	kvault_shred_tree(v->vfd, "recovery", NULL);
	for (size_t i = 0; i < v->policy->ncomps; i++) {
		const struct kpolicy_comp *c = &v->policy->comps[i];

		for (size_t j = 0; j < c->nepochs; j++) {
			struct kerrinfo e2 = { "", "" };

			if (kkeys_grant_open(v->vfd, v->hdr.vault_id, c, c->epochs[j].epoch, v->user, key,
					     &e2) != 0) {
				(*uncovered)++;
				continue;
			}
			r = kvault_recovery_seal(v, c->id, c->epochs[j].epoch, key, ei);
			ksecmem_wipe(key, 32);
			if (r)
				goto undo;
		}
	}
	if ((r = kvault_policy_commit(v, ei)) == 0)
		goto out;
undo:
	unlink(out);
	kvault_policy_reload(v, NULL);
out:
	if (fd >= 0)
		close(fd);
	ksecmem_free(sk);
	ksecmem_free(seed);
	ksecmem_free(key);
	ksecmem_free(text);
	return r;
}

int kvault_recovery_grant(struct kvault *v, const char *keyfile, const char *comp,
			  const char *user, bool read_only, struct kerrinfo *ei)
{
	struct kpolicy_comp *c;
	struct kpolicy_user *pu;
	uint8_t *sk = NULL, *key = NULL, pk[32];
	size_t given = 0;
	int r;

	if (!v->root_sk)
		return KERR_USAGE;
	if ((r = kvault_policy_reload(v, ei)) != 0)
		return r;
	if (!(c = kpolicy_comp_find_name(v->policy, comp))) {
		kerr_set(ei, comp, "no such compartment (see kinko compartment list)");
		return KERR_NOGRANT;
	}
	if (!(pu = kpolicy_user_find(v->policy, user))) {
		kerr_set(ei, user, "no such user");
		return KERR_NOUSER;
	}
	if (pu->role == KROLE_AUDITOR || pu->role == KROLE_BACKUP) {
		kerr_set(ei, user, "refused: %s users hold no compartment keys", krole_name(pu->role));
		return KERR_POLICY;
	}
	if (!kvault_recovery_pk(v->policy, pk)) {
		kerr_set(ei, "policy/", "the vault has no recovery key (kinko recovery create)");
		return KERR_NOGRANT;
	}
	if ((r = kvault_recovery_load(v, keyfile, &sk, ei)) != 0)
		return r;
	if (!(key = ksecmem_alloc(32))) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->nepochs; i++) {
		struct kerrinfo e2 = { "", "" };
		uint32_t ep = c->epochs[i].epoch;

		r = recovery_open(v, c, ep, sk, pk, key, ep == c->current_epoch ? ei : &e2);
		if (r == -ENOENT && ep != c->current_epoch)
			continue; /* an epoch from before the recovery key existed */
		if (r)
			goto out;
		r = kkeys_grant_write(v->vfd, v->hdr.vault_id, c->id, ep, user, pu->box_pk, key, ei);
		ksecmem_wipe(key, 32);
		if (r)
			goto out;
		given++;
	}
	if ((r = kpolicy_grant_set(v->policy, user, c->id, read_only)) != 0)
		goto out;
	r = kvault_policy_commit(v, ei);
out:
	if (r)
		kvault_policy_reload(v, NULL);
	ksecmem_free(sk);
	ksecmem_free(key);
	(void)given;
	return r;
}
