// SPDX-License-Identifier: GPL-2.0-or-later
/* Password input: terminal without echo, or the first line of a file/stdin.
 * Passwords never come from argv or the environment. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define PW_MAX 1024

void cli_password_free(struct kpassword *pw)
{
	if (pw && pw->s)
		ksecmem_free(pw->s);
	if (pw) {
		pw->s = NULL;
		pw->len = 0;
	}
}

static int read_line_fd(int fd, char *buf, size_t max, size_t *len)
{
	size_t n = 0;
	char c;

	for (;;) {
		ssize_t r = read(fd, &c, 1);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0 || c == '\n')
			break;
		if (n + 1 >= max)
			return -E2BIG;
		buf[n++] = c;
	}
	if (n && buf[n - 1] == '\r')
		n--;
	buf[n] = 0;
	*len = n;
	return 0;
}

static int tty_read(const char *prompt, char *buf, size_t max, size_t *len)
{
	struct termios old, noecho;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	int r;

	if (fd < 0)
		return -ENOTTY;
	if (tcgetattr(fd, &old) < 0) {
		close(fd);
		return -ENOTTY;
	}
	noecho = old;
	noecho.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	noecho.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &noecho) < 0) {
		close(fd);
		return -ENOTTY;
	}
	r = read_line_fd(fd, buf, max, len);
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		r = r ? r : -EIO;
	close(fd);
	return r;
}

int cli_password_get(const char *file, const char *prompt, bool confirm, struct kpassword *pw)
{
	char *again = NULL;
	size_t alen;
	int r;

	pw->s = ksecmem_alloc(PW_MAX);
	pw->len = 0;
	if (!pw->s)
		return -ENOMEM;
	if (file) {
		int fd = strcmp(file, "-") == 0 ? 0 : open(file, O_RDONLY | O_CLOEXEC);

		if (fd < 0) {
			r = KERR_USAGE;
			fprintf(stderr, "kinko: %s: cannot read the password file: %s\n", file, strerror(errno));
			goto fail;
		}
		r = read_line_fd(fd, pw->s, PW_MAX, &pw->len);
		if (fd != 0)
			close(fd);
		if (r) {
			fprintf(stderr, "kinko: %s: %s\n", file, r == -E2BIG ? "password line too long" : strerror(-r));
			goto fail;
		}
	} else {
		r = tty_read(prompt, pw->s, PW_MAX, &pw->len);
		if (r == -ENOTTY) {
			fprintf(stderr, "kinko: no terminal to ask for the password; use --password-file FILE (or - for stdin)\n");
			goto fail;
		}
		if (r)
			goto fail;
		if (confirm) {
			again = ksecmem_alloc(PW_MAX);
			if (!again) {
				r = -ENOMEM;
				goto fail;
			}
			if ((r = tty_read("Repeat the password: ", again, PW_MAX, &alen)) != 0)
				goto fail;
			if (alen != pw->len || !kcrypto_memeq(again, pw->s, alen)) {
				fprintf(stderr, "kinko: the passwords do not match; nothing changed\n");
				r = KERR_USAGE;
				goto fail;
			}
			ksecmem_free(again);
			again = NULL;
		}
	}
	if (pw->len == 0) {
		fprintf(stderr, "kinko: %s: empty password\n", file ? file : "terminal");
		r = KERR_USAGE;
		goto fail;
	}
	return 0;
fail:
	ksecmem_free(again);
	cli_password_free(pw);
	return r ? r : KERR_USAGE;
}

/* ---- progress bar: stderr, only when it is a terminal ---- */

void cli_bar_draw(void *ctx, uint64_t b, uint64_t tb, uint64_t f, uint64_t tf)
{
	struct cli_bar *p = ctx;
	struct timespec now;
	int pct = tb ? (int)(b * 100 / tb) : 100, fill;
	char bar[41];

	if (!p->on)
		return;
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (p->drawn && b < tb &&
	    (now.tv_sec - p->last.tv_sec) * 1000 + (now.tv_nsec - p->last.tv_nsec) / 1000000 < 100)
		return;
	p->last = now;
	p->drawn = true;
	fill = pct * 40 / 100;
	memset(bar, '#', (size_t)fill);
	memset(bar + fill, '-', (size_t)(40 - fill));
	bar[40] = 0;
	fprintf(stderr, "\r%-8s [%s] %3d%% %llu/%llu files %.1f/%.1f MiB", p->what, bar, pct,
		(unsigned long long)f, (unsigned long long)tf, (double)b / 1048576.0,
		(double)tb / 1048576.0);
}

void cli_bar_end(struct cli_bar *p)
{
	if (p->on && p->drawn)
		fputc('\n', stderr);
}

void cli_bar_init(struct cli_bar *p, const char *what, bool quiet)
{
	memset(p, 0, sizeof(*p));
	p->what = what;
	p->on = !quiet && isatty(STDERR_FILENO);
}

