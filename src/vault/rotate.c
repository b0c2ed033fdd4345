// SPDX-License-Identifier: GPL-2.0-or-later
/* Key rotation: a new epoch key for a compartment, sealed to every remaining
 * grantee and to the recovery key, its commitment in a new signed policy.
 * Mounted workstations see the new serial (checked at most once a second
 * when something new is written) and switch new content to the new epoch
 * without remounting. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kinko/lifecycle.h"

/* ---- live pickup ---- */

static pthread_mutex_t live_lk = PTHREAD_MUTEX_INITIALIZER;
static int64_t live_next_ms; /* next check (monotonic ms), atomic */

static int64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void live_check(struct kvault *v)
{
	int64_t now = mono_ms(), next = __atomic_load_n(&live_next_ms, __ATOMIC_RELAXED);
	struct kerrinfo ei = { "", "" };
	struct kpolicy *p = NULL;
	char name[64];

	if (now < next || !v->ring || !v->user ||
	    !__atomic_compare_exchange_n(&live_next_ms, &next, now + 1000, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	snprintf(name, sizeof(name), "policy/policy.%" PRIu64, v->ring->serial + 1);
	if (faccessat(v->vfd, name, F_OK, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	pthread_mutex_lock(&live_lk);
	if (kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &p, &ei) != 0) {
		log_warn("newer policy does not load (%s: %s); keeping the keys of serial %" PRIu64,
			 ei.file, ei.detail, v->ring->serial);
	} else if (p->serial > v->ring->serial) {
		if (kvault_state_check_serial(v->hdr.vault_id, p->serial, &ei) != 0)
			log_warn("policy serial %" PRIu64 " refused: %s", p->serial, ei.detail);
		else if (kkeys_ring_refresh(v->vfd, p, v->user, v->ring, &ei) != 0)
			log_warn("new epoch keys of policy %" PRIu64 " not all usable (%s: %s)", p->serial,
				 ei.file, ei.detail);
		else
			log_notice("policy serial %" PRIu64 " picked up (new epoch keys in use)", p->serial);
	}
	kpolicy_free(p);
	pthread_mutex_unlock(&live_lk);
}

const struct kformat_epoch_keys *kvault_current_keys(struct kvault *v, struct kkeys_comp *c)
{
	live_check(v);
	return kkeys_comp_epoch(c, __atomic_load_n(&c->current_epoch, __ATOMIC_ACQUIRE));
}

/* ---- helpers ---- */

int kvault_policy_reload(struct kvault *v, struct kerrinfo *ei)
{
	struct kpolicy *p = NULL;
	int r;

	if ((r = kpolicy_load(v->vfd, v->hdr.vault_id, v->hdr.root_pk, &p, ei)) != 0)
		return r;
	if ((r = kvault_state_check_serial(v->hdr.vault_id, p->serial, ei)) != 0) {
		kpolicy_free(p);
		return r;
	}
	kpolicy_free(v->policy);
	v->policy = p;
	return 0;
}

static void shred_file(int dfd, const char *name)
{
	struct stat st;
	int fd = openat(dfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);

	if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= (1 << 20)) {
		uint8_t buf[4096];

		for (off_t o = 0; o < st.st_size; o += (off_t)sizeof(buf)) {
			size_t n = (size_t)(st.st_size - o) < sizeof(buf) ? (size_t)(st.st_size - o) : sizeof(buf);

			kcrypto_random(buf, n);
			if (kpwrite_all(fd, buf, n, o) != 0)
				break;
		}
		fsync(fd);
	}
	if (fd >= 0)
		close(fd);
}

/* overwrite (key material: small files) and unlink a tree */
int kvault_shred_tree(int pfd, const char *path, uint64_t *nfiles)
{
	return krmtree_at(pfd, path, shred_file, nfiles);
}

/* ---- rotation ---- */

static int grantees(const struct kpolicy *p, const uint8_t comp[16])
{
	int n = 0;

	for (size_t i = 0; i < p->ngrants; i++)
		n += !memcmp(p->grants[i].comp, comp, 16);
	return n;
}

int kvault_rotate(struct kvault *v, const char *comp, const char *const *revoke, size_t nrevoke,
		  uint32_t *new_epoch, struct kerrinfo *ei)
{
	struct kpolicy_comp *c;
	uint8_t *key = NULL, cm[32], rpk[32];
	uint32_t e = 0;
	char p[200];
	int r;

	if (!v->root_sk)
		return KERR_USAGE;
	/* the newest policy: another administrator may have changed it */
	if ((r = kvault_policy_reload(v, ei)) != 0)
		return r;
	if (!(c = kpolicy_comp_find_name(v->policy, comp))) {
		kerr_set(ei, comp, "no such compartment (see kinko compartment list)");
		return KERR_NOGRANT;
	}
	for (size_t i = 0; i < nrevoke; i++) {
		if (!kpolicy_grant_find(v->policy, revoke[i], c->id)) {
			kerr_set(ei, revoke[i], "holds no grant of compartment '%s'", comp);
			r = KERR_NOGRANT;
			goto out;
		}
		if ((r = kpolicy_grant_remove(v->policy, revoke[i], c->id)) != 0)
			goto out;
	}
	if (grantees(v->policy, c->id) == 0) {
		kerr_set(ei, comp, "refused: no grantee would be left; without one nobody could ever read the compartment again (grant someone else first)");
		r = KERR_POLICY;
		goto out;
	}
	for (size_t i = 0; i < c->nepochs; i++)
		if (c->epochs[i].epoch > e)
			e = c->epochs[i].epoch;
	if (e == UINT32_MAX) {
		kerr_set(ei, comp, "no epoch number left");
		r = KERR_POLICY;
		goto out;
	}
	e++;
	r = -ENOMEM;
	if (!(key = ksecmem_alloc(32)))
		goto out;
	kcrypto_random(key, 32);
	if ((r = kformat_epoch_commitment(cm, key, v->hdr.vault_id, c->id, e)) != 0)
		goto out;
	/* leftovers of an attempt that never reached the policy */
	snprintf(p, sizeof(p), "grants/%s/%" PRIu32, c->hexid, e);
	kvault_shred_tree(v->vfd, p, NULL);
	/* the grants first: a policy naming the epoch must find them */
	for (size_t i = 0; i < v->policy->ngrants; i++) {
		const struct kpolicy_grant *g = &v->policy->grants[i];
		const struct kpolicy_user *u;

		if (memcmp(g->comp, c->id, 16) != 0)
			continue;
		if (!(u = kpolicy_user_find(v->policy, g->user))) {
			r = KERR_FORMAT;
			goto out;
		}
		if ((r = kkeys_grant_write(v->vfd, v->hdr.vault_id, c->id, e, u->id, u->box_pk, key, ei)) != 0)
			goto out;
	}
	if (kvault_recovery_pk(v->policy, rpk) &&
	    (r = kvault_recovery_seal(v, c->id, e, key, ei)) != 0)
		goto out;
	if ((r = kpolicy_epoch_add(c, e, cm, ktime_now())) != 0)
		goto out;
	if ((r = kvault_policy_commit(v, ei)) != 0)
		goto out;
	/* the revoked users' old grant files: their copies are now worth only
	 * what is still under old epochs (until kinko key rekey) */
	for (size_t i = 0; i < nrevoke; i++)
		for (size_t j = 0; j < c->nepochs; j++) {
			snprintf(p, sizeof(p), "grants/%s/%" PRIu32 "/%s.grant", c->hexid, c->epochs[j].epoch,
				 revoke[i]);
			unlinkat(v->vfd, p, 0);
		}
	if (new_epoch)
		*new_epoch = e;
out:
	/* v->policy may hold uncommitted changes: take the stored one back */
	if (r && kvault_policy_reload(v, NULL) != 0)
		log_warn("could not reload the policy");
	ksecmem_free(key);
	return r;
}
