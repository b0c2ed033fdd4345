// SPDX-License-Identifier: GPL-2.0-or-later
/* fsck: walk each compartment the user holds and verify every directory IV
 * file, name, file header (with its name binding), content block, symlink and
 * xattr (the verified walk of vault/walk.c). Each damaged item is reported
 * with its plaintext path where the names above it decrypt. Read-only: fsck
 * never changes the vault. */
#include <errno.h>
#include <string.h>

#include "kinko/vault.h"

struct fsck {
	const struct kkeys_comp *c;
	kvault_fsck_report_fn report, note;
	void *ctx;
};

static int fsck_damage(void *vctx, const char *path, const char *why)
{
	struct fsck *f = vctx;

	f->report(f->ctx, f->c->name, path, why);
	return 0; /* go on: fsck reports everything */
}

static int fsck_note(void *vctx, const char *path, const char *what)
{
	struct fsck *f = vctx;

	if (f->note)
		f->note(f->ctx, f->c->name, path, what);
	return 0;
}

int kvault_fsck(struct kvault *v, kvault_fsck_report_fn report, kvault_fsck_report_fn note,
		void *ctx, struct kvault_fsck_stats *st)
{
	static const struct kvault_walk_ops ops = { .damage = fsck_damage, .note = fsck_note };
	struct fsck f = { NULL, report, note, ctx };
	int r;

	memset(st, 0, sizeof(*st));
	st->skipped = v->policy->ncomps - v->ring->ncomps;
	for (size_t i = 0; i < v->ring->ncomps; i++) {
		f.c = &v->ring->comps[i];
		if ((r = kvault_walk_comp(v, f.c, &ops, &f, st)) != 0)
			return r;
	}
	return 0;
}
