// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko ledger: the newest record this workstation has seen of each vault's
 * ledger (number and hash), kept outside the vault beside the other
 * per-workstation state ($KINKO_STATE_DIR, else /var/lib/kinko as root, else
 * $XDG_STATE_HOME/kinko or ~/.local/state/kinko), file <vault id hex>.ledger:
 * "<seq> <64 hex>\n". It lets kinko ledger verify notice the newest records
 * removed (nothing in the ledger itself points at them). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kinko/ledger.h"

static int seen_path(const uint8_t vault_id[16], char *out, size_t n)
{
	const char *e = getenv("KINKO_STATE_DIR"), *home;
	char dir[4096], hex[33];
	int r;

	if (e && *e)
		snprintf(dir, sizeof(dir), "%s", e);
	else if (geteuid() == 0)
		snprintf(dir, sizeof(dir), "/var/lib/kinko");
	else if ((e = getenv("XDG_STATE_HOME")) && *e)
		snprintf(dir, sizeof(dir), "%s/kinko", e);
	else if ((home = getenv("HOME")) && *home)
		snprintf(dir, sizeof(dir), "%s/.local/state/kinko", home);
	else
		return -ENOENT;
	if ((r = kmkdirs_at(AT_FDCWD, dir, 0700)) != 0 && r != -EEXIST)
		return r;
	khex_encode(hex, vault_id, 16);
	if ((size_t)snprintf(out, n, "%s/%s.ledger", dir, hex) >= n)
		return -ENAMETOOLONG;
	return 0;
}

int kledger_seen_get(const uint8_t vault_id[16], uint64_t *seq, uint8_t hash[32])
{
	char path[4200], line[128], hex[65];
	unsigned long long s;
	FILE *f;
	int r;

	*seq = 0;
	memset(hash, 0, 32);
	if ((r = seen_path(vault_id, path, sizeof(path))) != 0)
		return r;
	if (!(f = fopen(path, "re")))
		return errno == ENOENT ? 0 : -errno;
	r = fgets(line, sizeof(line), f) && sscanf(line, "%llu %64s", &s, hex) == 2 &&
		    strlen(hex) == 64 && khex_decode(hash, 32, hex) == 0 ? 0 : KERR_FORMAT;
	fclose(f);
	if (r == 0)
		*seq = s;
	return r;
}

int kledger_seen_set(const uint8_t vault_id[16], uint64_t seq, const uint8_t hash[32], bool raise)
{
	char path[4200], line[128], hex[65], *slash;
	uint64_t cur;
	uint8_t h[32];
	int dfd, r;

	if (raise && kledger_seen_get(vault_id, &cur, h) == 0 && cur >= seq)
		return 0;
	if ((r = seen_path(vault_id, path, sizeof(path))) != 0)
		return r;
	khex_encode(hex, hash, 32);
	snprintf(line, sizeof(line), "%llu %s\n", (unsigned long long)seq, hex);
	slash = strrchr(path, '/');
	*slash = 0;
	if ((dfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
		return -errno;
	r = seq ? kfile_replace_at(dfd, slash + 1, line, strlen(line), 0600)
		: (unlinkat(dfd, slash + 1, 0) < 0 && errno != ENOENT ? -errno : 0);
	close(dfd);
	return r;
}
