/* kinko guard: client side of the guard service protocol. */
#ifndef KINKO_GUARD_H
#define KINKO_GUARD_H

#include "kinko/util.h"

/* Register an approved job that writes ciphertext under dest (kind "backup" or
 * "takeout") with the guard service ($KINKO_GUARD_SOCKET, else
 * /run/kinko/guard.sock). Returns 0; -ECONNREFUSED or -ENOENT when no guard
 * runs (the caller goes on: no guard, no barrier); another negative error
 * (detail in ei) when the guard refuses. */
int kguard_register_job(const char *kind, const char *medium, const char *dest, const char *user,
			const char *vault, struct kerrinfo *ei);

#endif
