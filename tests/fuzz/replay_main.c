// SPDX-License-Identifier: GPL-2.0-or-later
/* Corpus replay for builds without libFuzzer (gcc, or -Dfuzzing=false):
 *
 *   <harness> CORPUS_DIR [MUTATIONS]
 *
 * feeds every regular file of CORPUS_DIR (in name order) to
 * LLVMFuzzerTestOneInput, then MUTATIONS (default 400) deterministic
 * pseudo-random mutations of each. Every input sits in its own allocation of
 * exactly its size, so ASan reports any over-read. Seeds named valid-* must
 * pass fuzz_check() and seeds named corrupt-* must fail it: a format change
 * that silently invalidates the corpus fails the test. A broken invariant
 * aborts inside the harness; the input is then saved as fuzz-crash.<pid>.bin. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz_common.h"

#define REPLAY_MAX_INPUT (1u << 20)

static uint64_t rng;

static uint64_t next(void)
{
	/* xorshift64* */
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * UINT64_C(2685821657736338717);
}

static size_t below(size_t n) { return n ? (size_t)(next() % n) : 0; }

static uint64_t hash_name(const char *s)
{
	uint64_t h = UINT64_C(1469598103934665603);

	while (*s)
		h = (h ^ (uint8_t)*s++) * UINT64_C(1099511628211);
	return h;
}

/* characters that matter to the text formats (base64url, JSON) */
static const char text_chars[] =
	"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=.{}[]:,\"\\ 0123456789eE";

static const uint32_t interesting[] = { 0, 1, 2, 7, 8, 16, 32, 33, 76, 80, 127, 128, 255, 256,
					0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000u,
					0xffffffffu };

/* one mutation of buf (len, capacity cap) in place; returns the new length */
static size_t mutate_once(uint8_t *buf, size_t len, size_t cap)
{
	switch (below(12)) {
	case 0: /* flip a bit */
	case 1:
		if (len)
			buf[below(len)] ^= (uint8_t)(1u << below(8));
		break;
	case 2: /* random byte */
		if (len)
			buf[below(len)] = (uint8_t)next();
		break;
	case 3: /* text character */
		if (len)
			buf[below(len)] = (uint8_t)text_chars[below(sizeof(text_chars) - 1)];
		break;
	case 4: { /* interesting 8/16/32-bit little-endian value */
		uint32_t v = interesting[below(sizeof(interesting) / sizeof(interesting[0]))];
		size_t w = (size_t)1 << below(3), at;

		if (len < w)
			break;
		at = below(len - w + 1);
		for (size_t i = 0; i < w; i++)
			buf[at + i] = (uint8_t)(v >> (8 * i));
		break;
	}
	case 5: /* insert a byte */
		if (len < cap) {
			size_t at = below(len + 1);

			if (at > len)
				break;
			memmove(buf + at + 1, buf + at, len - at);
			buf[at] = (uint8_t)next();
			len++;
		}
		break;
	case 6: /* delete a run */
		if (len) {
			size_t at = below(len), n = 1 + below(len - at < 8 ? len - at : 8);

			memmove(buf + at, buf + at + n, len - at - n);
			len -= n;
		}
		break;
	case 7: /* truncate */
		len = below(len + 1);
		break;
	case 8: /* append */
		for (size_t n = 1 + below(16); n && len < cap; n--)
			buf[len++] = (uint8_t)next();
		break;
	case 9: { /* duplicate a chunk somewhere */
		size_t from, n, to;

		if (!len)
			break;
		from = below(len);
		n = 1 + below(len - from < 32 ? len - from : 32);
		if (len + n > cap)
			break;
		to = below(len + 1);
		for (size_t i = len; i > to; i--) /* open a gap of n bytes at to */
			buf[i - 1 + n] = buf[i - 1];
		memmove(buf + to, buf + (from >= to ? from + n : from), n);
		len += n;
		break;
	}
	case 10: /* swap two bytes */
		if (len > 1) {
			size_t a = below(len), b = below(len);
			uint8_t t = buf[a];

			buf[a] = buf[b];
			buf[b] = t;
		}
		break;
	default: /* overwrite a run with one value */
		if (len) {
			size_t at = below(len), n = 1 + below(len - at < 16 ? len - at : 16);

			memset(buf + at, below(2) ? 0 : 0xff, n);
		}
		break;
	}
	return len;
}

/* the input being run, for the report if the harness dies on it */
static const char *cur_seed = "(empty input)";
static long cur_mut = -1;
static const uint8_t *cur_data;
static size_t cur_len;

static void put(const char *s)
{
	if (write(2, s, strlen(s)) < 0)
		return;
}

/* called on abort (a FUZZ_ASSERT, or a sanitizer report with abort_on_error=1):
 * name the input and save it as fuzz-crash.<pid>.bin in the working directory */
static void report_current(void)
{
	char msg[600], path[64];
	int fd;

	snprintf(path, sizeof(path), "fuzz-crash.%ld.bin", (long)getpid());
	snprintf(msg, sizeof(msg), "replay: died on seed '%s', mutation %ld (%zu bytes); input saved to %s\n",
		 cur_seed, cur_mut, cur_len, path);
	put(msg);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (cur_len && write(fd, cur_data, cur_len) != (ssize_t)cur_len)
			put("replay: could not save the input\n");
		close(fd);
	}
}

static void on_fatal(int sig)
{
	report_current();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void run(const uint8_t *d, size_t n)
{
	/* an exactly-sized copy so that any read past the end is caught */
	uint8_t *copy = malloc(n ? n : 1);

	if (!copy) {
		perror("malloc");
		exit(2);
	}
	if (n)
		memcpy(copy, d, n);
	cur_data = d;
	cur_len = n;
	LLVMFuzzerTestOneInput(copy, n);
	free(copy);
}

static int read_file(const char *dir, const char *name, uint8_t **out, size_t *len)
{
	char path[4096];
	struct stat st;
	ssize_t got;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > REPLAY_MAX_INPUT) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	*out = malloc((size_t)st.st_size + 1);
	if (!*out) {
		close(fd);
		return -1;
	}
	got = kpread_full(fd, *out, (size_t)st.st_size, 0);
	close(fd);
	if (got != st.st_size) {
		free(*out);
		return -1;
	}
	*len = (size_t)got;
	return 0;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static int not_hidden(const struct dirent *e) { return e->d_name[0] != '.'; }

int main(int argc, char **argv)
{
	struct dirent **ents = NULL;
	long mutations = 400;
	size_t files = 0, inputs = 0, valid = 0, corrupt = 0;
	int n, failures = 0;

	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: %s CORPUS_DIR [MUTATIONS]\n", argv[0]);
		return 2;
	}
	if (argc == 3) {
		char *end;

		mutations = strtol(argv[2], &end, 10);
		if (*end || mutations < 0) {
			fprintf(stderr, "bad mutation count '%s'\n", argv[2]);
			return 2;
		}
	}
	signal(SIGABRT, on_fatal);
#ifndef __SANITIZE_ADDRESS__
	/* without ASan (which reports these itself) name the input on a crash too */
	signal(SIGSEGV, on_fatal);
	signal(SIGBUS, on_fatal);
	signal(SIGFPE, on_fatal);
#endif
	fuzz_init();
	n = scandir(argv[1], &ents, not_hidden, by_name);
	if (n < 0) {
		fprintf(stderr, "%s: %s\n", argv[1], strerror(errno));
		return 2;
	}
	run((const uint8_t *)"", 0);
	inputs++;
	for (int i = 0; i < n; i++) {
		uint8_t *seed = NULL, *buf;
		size_t len = 0, cap;
		const char *name = ents[i]->d_name;

		if (read_file(argv[1], name, &seed, &len) != 0) {
			free(ents[i]);
			continue;
		}
		files++;
		cur_seed = name;
		cur_mut = -1;
		cur_data = seed;
		cur_len = len;
		if (strncmp(name, "valid", 5) == 0) {
			valid++;
			if (fuzz_check(seed, len) != 0) {
				fprintf(stderr, "FAIL: %s/%s is named valid but does not check\n", argv[1], name);
				failures++;
			}
		} else if (strncmp(name, "corrupt", 7) == 0) {
			corrupt++;
			if (fuzz_check(seed, len) == 0) {
				fprintf(stderr, "FAIL: %s/%s is named corrupt but checks as valid\n", argv[1], name);
				failures++;
			}
		}
		run(seed, len);
		inputs++;
		cap = len + 256;
		buf = malloc(cap);
		if (!buf) {
			perror("malloc");
			return 2;
		}
		for (long m = 0; m < mutations; m++) {
			size_t l = len;

			rng = hash_name(name) ^ ((uint64_t)m * UINT64_C(0x9e3779b97f4a7c15)) ^ 0x5eedu;
			if (!rng)
				rng = 1;
			memcpy(buf, seed, len);
			for (size_t k = 1 + below(4); k; k--)
				l = mutate_once(buf, l, cap);
			cur_mut = m;
			run(buf, l);
			inputs++;
		}
		free(buf);
		free(seed);
		free(ents[i]);
	}
	free(ents);
	printf("%s: %zu seed files (%zu valid, %zu corrupt), %zu inputs, %d failures\n", argv[1], files, valid,
	       corrupt, inputs, failures);
	if (files == 0 || valid == 0) {
		fprintf(stderr, "FAIL: no seed files (or no valid seed) in %s\n", argv[1]);
		return 1;
	}
	return failures ? 1 : 0;
}
