// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko compartment erase: crypto-erasure of a compartment, and the signed
 * erasure certificate (OPS 4.2.2: erase before disposal, keep the records).
 *
 * Steps, each resumable (certificates/<comp hex>.pending remembers what is
 * being erased, so a rerun by name finishes the job after a crash):
 *  1. count the ciphertext (files, directories, symlinks, bytes);
 *  2. overwrite and unlink every sealed copy of every epoch key: the grants
 *     of all users and the recovery key's copies (the erasure proper: without
 *     the keys the ciphertext is noise, wherever copies of it went);
 *  3. a new signed policy without the compartment, its epochs and grants;
 *  4. unlink the ciphertext;
 *  5. write the certificate, signed by the administrator and the root key,
 *     as certificates/<time>-<comp hex>.cert. (The ledger of issue 5 will
 *     record it; until then this directory is the record.) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "kinko/lifecycle.h"

#define CERT_BEGIN "-----BEGIN KINKO ERASURE CERTIFICATE-----\n"
#define CERT_END "-----END KINKO ERASURE CERTIFICATE-----\n"
#define CERT_MAX (256u << 10)
#define METHOD "crypto-erasure: every sealed copy of every epoch key of the compartment (the grants of all users and the copies for the recovery key) overwritten with random bytes, fsynced and unlinked; the key commitments removed from the signed policy; then the ciphertext unlinked"
#define LIMITS "copies outside the vault's control (backups or take-out vaults made before the erasure, copies of key files) are not reached; their ciphertext cannot be read without the destroyed keys, but a copied grant together with its user's key file and password still opens the ciphertext of that backup; on SSDs and copy-on-write or network storage, overwriting does not guarantee that old blocks are gone"

static void count_tree(int dfd, struct kvault_erase_result *res, int depth)
{
	int fd = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d)) != NULL) {
		struct stat st;
		enum kformat_entry_kind k;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		k = kformat_entry_classify(de->d_name);
		if (S_ISREG(st.st_mode))
			res->bytes += (uint64_t)st.st_size;
		if (k != KFORMAT_ENTRY_NAME && k != KFORMAT_ENTRY_LONG)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int cfd = openat(dirfd(d), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			res->dirs++;
			if (cfd >= 0 && depth < 512)
				count_tree(cfd, res, depth + 1);
			if (cfd >= 0)
				close(cfd);
		} else if (S_ISREG(st.st_mode)) {
			res->files++;
		} else if (S_ISLNK(st.st_mode)) {
			res->symlinks++;
		}
	}
	closedir(d);
}

static json_t *hexj(const uint8_t *b, size_t n)
{
	char h[129];

	khex_encode(h, b, n);
	return json_string(h);
}

/* find certificates/<hex>.pending for a compartment named name */
static json_t *pending_find(int vfd, const char *name, char hexid[33])
{
	int fd = openat(vfd, "certificates", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d;
	struct dirent *de;
	json_t *found = NULL;

	if (fd < 0 || !(d = fdopendir(fd))) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	while (!found && (de = readdir(d)) != NULL) {
		uint8_t *buf = NULL;
		size_t len;
		json_t *j;

		if (strlen(de->d_name) != 32 + 8 || strcmp(de->d_name + 32, ".pending") != 0)
			continue;
		if (kfile_read_at(dirfd(d), de->d_name, 65536, &buf, &len) != 0)
			continue;
		j = json_loadb((const char *)buf, len, 0, NULL);
		free(buf);
		if (j && json_is_string(json_object_get(json_object_get(j, "compartment"), "name")) &&
		    strcmp(json_string_value(json_object_get(json_object_get(j, "compartment"), "name")),
			   name) == 0) {
			snprintf(hexid, 33, "%.32s", de->d_name);
			found = j;
		} else {
			json_decref(j);
		}
	}
	closedir(d);
	return found;
}

static int sign_b64(char out[100], const char *body, size_t len, const uint8_t sk[64])
{
	uint8_t sig[64];
	int r;

	if ((r = kcrypto_sign(sig, (const uint8_t *)body, len, sk)) != 0)
		return r;
	return kcrypto_b64_encode(out, 100, sig, 64);
}

int kvault_comp_erase(struct kvault *v, const char *comp, struct kvault_erase_result *res,
		      struct kerrinfo *ei)
{
	struct kpolicy_comp *c;
	json_t *pend = NULL, *body = NULL;
	char hexid[33], path[160], t[32], host[128], ssig[100], rsig[100], *bs = NULL, *text = NULL;
	struct passwd *pw = getpwuid(getuid());
	uint64_t keys = 0;
	int r;

	memset(res, 0, sizeof(*res));
	if (!v->root_sk || !v->holder)
		return KERR_USAGE;
	if ((r = kvault_policy_reload(v, ei)) != 0)
		return r;
	if (mkdirat(v->vfd, "certificates", 0755) < 0 && errno != EEXIST) {
		r = -errno;
		kerr_set(ei, "certificates/", NULL);
		return r;
	}
	c = kpolicy_comp_find_name(v->policy, comp);
	if (c) {
		json_t *cj = json_object(), *eps = json_array(), *cnt = json_object();
		int dfd = openat(v->datafd, c->hexid, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

		if (dfd >= 0) {
			count_tree(dfd, res, 0);
			close(dfd);
		}
		snprintf(hexid, sizeof(hexid), "%s", c->hexid);
		for (size_t i = 0; i < c->nepochs; i++) {
			json_t *e = json_object();

			json_object_set_new(e, "epoch", json_integer(c->epochs[i].epoch));
			json_object_set_new(e, "commitment", hexj(c->epochs[i].commitment, 32));
			json_array_append_new(eps, e);
		}
		json_object_set_new(cj, "name", json_string(c->name));
		json_object_set_new(cj, "id", json_string(c->hexid));
		json_object_set_new(cj, "class", json_string(kclass_name(c->klass)));
		json_object_set_new(cj, "epochs", eps);
		json_object_set_new(cnt, "files", json_integer((json_int_t)res->files));
		json_object_set_new(cnt, "directories", json_integer((json_int_t)res->dirs));
		json_object_set_new(cnt, "symlinks", json_integer((json_int_t)res->symlinks));
		json_object_set_new(cnt, "ciphertext_bytes", json_integer((json_int_t)res->bytes));
		ktime_iso(t, sizeof(t), ktime_now());
		pend = json_object();
		json_object_set_new(pend, "compartment", cj);
		json_object_set_new(pend, "erased", cnt);
		json_object_set_new(pend, "started", json_string(t));
		bs = json_dumps(pend, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		snprintf(path, sizeof(path), "certificates/%s.pending", hexid);
		r = bs ? kfile_replace_at(v->vfd, path, bs, strlen(bs), 0644) : -ENOMEM;
		free(bs);
		bs = NULL;
		if (r) {
			kerr_set(ei, path, NULL);
			goto out;
		}
	} else if (!(pend = pending_find(v->vfd, comp, hexid))) {
		kerr_set(ei, comp, "no such compartment (see kinko compartment list)");
		return KERR_NOGRANT;
	} else {
		json_t *cnt = json_object_get(pend, "erased");

		res->files = (uint64_t)json_integer_value(json_object_get(cnt, "files"));
		res->dirs = (uint64_t)json_integer_value(json_object_get(cnt, "directories"));
		res->symlinks = (uint64_t)json_integer_value(json_object_get(cnt, "symlinks"));
		res->bytes = (uint64_t)json_integer_value(json_object_get(cnt, "ciphertext_bytes"));
	}
	/* 2. the keys */
	snprintf(path, sizeof(path), "grants/%s", hexid);
	if ((r = kvault_shred_tree(v->vfd, path, &keys)) != 0) {
		kerr_set(ei, path, "cannot destroy the key files: %s", strerror(-r));
		goto out;
	}
	snprintf(path, sizeof(path), "recovery/%s", hexid);
	if ((r = kvault_shred_tree(v->vfd, path, &keys)) != 0) {
		kerr_set(ei, path, "cannot destroy the recovery copies: %s", strerror(-r));
		goto out;
	}
	res->key_files = keys + (uint64_t)json_integer_value(json_object_get(pend, "key_files_done"));
	json_object_set_new(pend, "key_files_done", json_integer((json_int_t)res->key_files));
	/* 3. the policy */
	if ((c = kpolicy_comp_find_name(v->policy, comp)) != NULL) {
		uint8_t id[16];
		size_t k = 0;

		memcpy(id, c->id, 16);
		for (size_t i = 0; i < v->policy->ngrants; i++)
			if (memcmp(v->policy->grants[i].comp, id, 16) != 0)
				v->policy->grants[k++] = v->policy->grants[i];
		v->policy->ngrants = k;
		free(c->name);
		free(c->epochs);
		k = (size_t)(c - v->policy->comps);
		memmove(c, c + 1, (v->policy->ncomps - k - 1) * sizeof(*c));
		v->policy->ncomps--;
		if ((r = kvault_policy_commit(v, ei)) != 0)
			goto out;
		snprintf(path, sizeof(path), "certificates/%s.pending", hexid);
		bs = json_dumps(pend, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
		if (bs && kfile_replace_at(v->vfd, path, bs, strlen(bs), 0644) != 0)
			log_warn("cannot update %s", path);
		free(bs);
		bs = NULL;
	}
	/* 4. the ciphertext */
	if ((r = krmtree_at(v->datafd, hexid, NULL, NULL)) != 0) {
		kerr_set(ei, "data/", "cannot remove data/%s: %s", hexid, strerror(-r));
		goto out;
	}
	fsync(v->datafd);
	/* 5. the certificate */
	{
		json_t *vj = json_object(), *by = json_object();
		char vid[33];

		khex_encode(vid, v->hdr.vault_id, 16);
		gethostname(host, sizeof(host));
		host[sizeof(host) - 1] = 0;
		body = json_object();
		json_object_set_new(body, "type", json_string("kinko erasure certificate"));
		json_object_set_new(body, "version", json_integer(1));
		json_object_set_new(vj, "id", json_string(vid));
		json_object_set_new(vj, "root_public_key", hexj(v->hdr.root_pk, 32));
		json_object_set_new(vj, "path", json_string(v->path));
		json_object_set_new(body, "vault", vj);
		json_object_set(body, "compartment", json_object_get(pend, "compartment"));
		json_object_set(body, "erased", json_object_get(pend, "erased"));
		json_object_set_new(json_object_get(body, "erased"), "key_files_destroyed",
				    json_integer((json_int_t)res->key_files));
		json_object_set_new(body, "method", json_string(METHOD));
		json_object_set_new(body, "limits", json_string(LIMITS));
		json_object_set_new(by, "user", json_string(v->user->id));
		json_object_set_new(by, "sign_public_key", hexj(v->user->sign_pk, 32));
		json_object_set_new(by, "os_user", json_string(pw ? pw->pw_name : "?"));
		json_object_set_new(by, "host", json_string(host));
		json_object_set_new(body, "erased_by", by);
		json_object_set(body, "started", json_object_get(pend, "started"));
		ktime_iso(t, sizeof(t), ktime_now());
		json_object_set_new(body, "completed", json_string(t));
		json_object_set_new(body, "policy_serial", json_integer((json_int_t)v->policy->serial));
	}
	r = -ENOMEM;
	if (!(bs = json_dumps(body, JSON_INDENT(1) | JSON_PRESERVE_ORDER)))
		goto out;
	{
		size_t blen = strlen(bs), tl = blen + 512;

		if (!(text = malloc(tl)))
			goto out;
		bs[blen] = 0;
		/* the signed bytes: the body and its final newline */
		{
			char *b2 = malloc(blen + 2);

			if (!b2)
				goto out;
			memcpy(b2, bs, blen);
			b2[blen] = '\n';
			b2[blen + 1] = 0;
			free(bs);
			bs = b2;
			blen++;
		}
		if ((r = sign_b64(ssig, bs, blen, v->user->sign_sk)) != 0 ||
		    (r = sign_b64(rsig, bs, blen, v->root_sk)) != 0)
			goto out;
		snprintf(text, tl, CERT_BEGIN "%s" CERT_END "signer-signature: %s\nroot-signature: %s\n", bs,
			 ssig, rsig);
	}
	{
		char ts[32];
		size_t j = 0;

		for (const char *p = t; *p && j < sizeof(ts) - 1; p++)
			if (*p != '-' && *p != ':')
				ts[j++] = *p;
		ts[j] = 0;
		snprintf(res->cert_path, sizeof(res->cert_path), "certificates/%s-%s.cert", ts, hexid);
	}
	if ((r = kfile_replace_at(v->vfd, res->cert_path, text, strlen(text), 0644)) != 0) {
		kerr_set(ei, res->cert_path, NULL);
		goto out;
	}
	snprintf(path, sizeof(path), "certificates/%s.pending", hexid);
	unlinkat(v->vfd, path, 0);
	r = 0;
out:
	json_decref(pend);
	json_decref(body);
	free(bs);
	free(text);
	return r;
}

int kcert_verify_file(const char *path, const struct kvault *v, char **bodyp, struct kerrinfo *ei)
{
	uint8_t *buf = NULL, sig[64], rpk[32], spk[32];
	char *s, *b, *e, *line;
	size_t len, blen, sl;
	json_t *j = NULL;
	const char *rp, *sp;
	int fd, r;

	*bodyp = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		kerr_set(ei, path, NULL);
		return r == -ENOENT ? KERR_USAGE : r;
	}
	buf = malloc(CERT_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	{
		ssize_t n = kpread_full(fd, buf, CERT_MAX + 1, 0);

		close(fd);
		if (n < 0 || n > (ssize_t)CERT_MAX) {
			free(buf);
			kerr_set(ei, path, n < 0 ? "unreadable" : "too large to be a certificate");
			return n < 0 ? (int)n : KERR_FORMAT;
		}
		len = (size_t)n;
	}
	buf[len] = 0;
	s = (char *)buf;
	r = KERR_FORMAT;
	if (strlen(s) != len || strncmp(s, CERT_BEGIN, strlen(CERT_BEGIN)) != 0 ||
	    !(e = strstr(s, "\n" CERT_END))) {
		kerr_set(ei, path, "not a kinko erasure certificate");
		goto out;
	}
	b = s + strlen(CERT_BEGIN);
	blen = (size_t)(e + 1 - b);
	if (!(j = json_loadb(b, blen, JSON_REJECT_DUPLICATES, NULL)) ||
	    !(rp = json_string_value(json_object_get(json_object_get(j, "vault"), "root_public_key"))) ||
	    !(sp = json_string_value(json_object_get(json_object_get(j, "erased_by"), "sign_public_key"))) ||
	    strlen(rp) != 64 || strlen(sp) != 64 || khex_decode(rpk, 32, rp) || khex_decode(spk, 32, sp) ||
	    strcmp(json_string_value(json_object_get(j, "type")) ? json_string_value(json_object_get(j, "type")) : "",
		   "kinko erasure certificate") != 0) {
		kerr_set(ei, path, "certificate body malformed");
		goto out;
	}
	line = e + 1 + strlen(CERT_END);
	sl = strlen("signer-signature: ");
	{
		char *nl1, *nl2;
		size_t dl;

		if (strncmp(line, "signer-signature: ", sl) != 0 || !(nl1 = strchr(line, '\n')) ||
		    strncmp(nl1 + 1, "root-signature: ", 16) != 0 || !(nl2 = strchr(nl1 + 1, '\n')) ||
		    nl2[1] != 0) {
			kerr_set(ei, path, "signature lines missing or malformed");
			goto out;
		}
		*nl1 = 0;
		*nl2 = 0;
		if (kcrypto_b64_decode(sig, sizeof(sig), &dl, line + sl) != 0 || dl != 64 ||
		    kcrypto_verify(sig, (const uint8_t *)b, blen, spk) != 0) {
			r = KERR_AUTH;
			kerr_set(ei, path, "the administrator's signature does not verify (certificate altered)");
			goto out;
		}
		if (kcrypto_b64_decode(sig, sizeof(sig), &dl, nl1 + 1 + 16) != 0 || dl != 64 ||
		    kcrypto_verify(sig, (const uint8_t *)b, blen, rpk) != 0) {
			r = KERR_AUTH;
			kerr_set(ei, path, "the vault root signature does not verify (certificate altered)");
			goto out;
		}
	}
	if (v) {
		uint8_t vid[16];
		const char *vs = json_string_value(json_object_get(json_object_get(j, "vault"), "id"));

		if (!kcrypto_memeq(rpk, v->hdr.root_pk, 32) || !vs || strlen(vs) != 32 ||
		    khex_decode(vid, 16, vs) || memcmp(vid, v->hdr.vault_id, 16) != 0) {
			r = KERR_MISMATCH;
			kerr_set(ei, path, "signed by another vault's root key");
			goto out;
		}
	}
	*bodyp = strndup(b, blen);
	r = *bodyp ? 0 : -ENOMEM;
out:
	json_decref(j);
	free(buf);
	return r;
}
