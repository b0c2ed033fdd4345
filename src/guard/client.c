// SPDX-License-Identifier: GPL-2.0-or-later
/* kinko guard client: one JSON request line, one JSON reply line. */
#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "kinko/guard.h"

int kguard_register_job(const char *kind, const char *medium, const char *dest, const char *user,
			const char *vault, struct kerrinfo *ei)
{
	const char *path = getenv("KINKO_GUARD_SOCKET");
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	json_t *req = NULL, *rep = NULL;
	char *line = NULL, buf[4096];
	size_t got = 0;
	int fd = -1, r = -EIO;

	if (!path || !*path)
		path = "/run/kinko/guard.sock";
	if (strlen(path) >= sizeof(sa.sun_path)) {
		kerr_set(ei, path, "guard socket path too long");
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		r = -errno;
		if (r != -ENOENT && r != -ECONNREFUSED)
			kerr_set(ei, path, "cannot reach the guard: %s", strerror(-r));
		goto out;
	}
	req = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s}", "op", "register-job", "kind", kind,
			"medium", medium, "dest", dest, "pid", (json_int_t)getpid(), "user", user,
			"vault", vault);
	if (!req || !(line = json_dumps(req, JSON_COMPACT))) {
		r = -ENOMEM;
		goto out;
	}
	if ((r = kwrite_all(fd, line, strlen(line))) != 0 || (r = kwrite_all(fd, "\n", 1)) != 0)
		goto out;
	while (got < sizeof(buf) - 1 && !memchr(buf, '\n', got)) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 10000) <= 0) {
			r = -ETIMEDOUT;
			kerr_set(ei, path, "the guard did not answer");
			goto out;
		}
		n = read(fd, buf + got, sizeof(buf) - 1 - got);
		if (n <= 0) {
			r = n < 0 ? -errno : -EPROTO;
			break;
		}
		got += (size_t)n;
	}
	buf[got] = 0;
	rep = json_loads(buf, JSON_DISABLE_EOF_CHECK, NULL);
	if (!json_is_object(rep)) {
		r = -EPROTO;
		kerr_set(ei, path, "the guard's reply is not JSON");
	} else if (json_is_true(json_object_get(rep, "ok"))) {
		r = 0;
	} else {
		const char *e = json_string_value(json_object_get(rep, "error"));

		r = -EPERM;
		kerr_set(ei, path, "the guard refused the job: %s", e ? e : "no reason given");
	}
out:
	json_decref(req);
	json_decref(rep);
	free(line);
	if (fd >= 0)
		close(fd);
	return r;
}
