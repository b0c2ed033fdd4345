/* kinko guard: is a block device removable? (sysfs) */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kinko/guard.h"

#define DEPTH_MAX 8

/* buses whose disks count as removable media */
static const char *const removable_buses[] = {
	"usb", "mmc", "mmc_host", "sdio", "memstick", "firewire", "ieee1394", "thunderbolt",
};

static int read_small(const char *dir, const char *name, char *out, size_t n)
{
	char p[PATH_MAX];
	ssize_t l;

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
		return -ENAMETOOLONG;
	if ((l = kread_text(p, out, n)) < 0)
		return (int)l;
	while (l > 0 && (out[l - 1] == '\n' || out[l - 1] == ' '))
		out[--l] = 0;
	return 0;
}

static bool exists(const char *dir, const char *name)
{
	char p[PATH_MAX];

	if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, name) >= sizeof(p))
		return false;
	return access(p, F_OK) == 0;
}

static void say(char *why, size_t n, const char *fmt, const char *a, const char *b)
{
	if (why && n)
		snprintf(why, n, fmt, a, b);
}

static int check_major_minor(const char *root, unsigned major, unsigned minor, int depth,
			     char *why, size_t n);

/* the device's directory (resolved): its disk, then the disk's own flags, its
 * loop backing file, its slaves (dm, md, LVM), its bus */
static int check_dir(const char *root, const char *dir, int depth, char *why, size_t n)
{
	char disk[PATH_MAX], buf[PATH_MAX], devices[PATH_MAX];
	const char *name;
	DIR *d;
	int r;

	if (depth > DEPTH_MAX)
		return 0;
	snprintf(disk, sizeof(disk), "%s", dir);
	if (exists(disk, "partition")) {
		char *slash = strrchr(disk, '/');

		if (slash && slash != disk)
			*slash = 0;
	}
	name = strrchr(disk, '/') ? strrchr(disk, '/') + 1 : disk;
	if (read_small(disk, "removable", buf, sizeof(buf)) == 0 && strcmp(buf, "1") == 0) {
		say(why, n, "%s: removable flag set%s", name, "");
		return 1;
	}
	/* a loop device is as removable as the file behind it */
	if (strncmp(name, "loop", 4) == 0) {
		struct stat st;

		if (read_small(disk, "loop/backing_file", buf, sizeof(buf)) == 0 && buf[0] == '/' &&
		    stat(buf, &st) == 0 && major(st.st_dev) != 0) {
			r = check_major_minor(root, major(st.st_dev), minor(st.st_dev), depth + 1, why, n);
			if (r)
				return r;
		}
		return 0;
	}
	/* dm-crypt, LVM, md: removable if any device below is */
	if ((size_t)snprintf(buf, sizeof(buf), "%s/slaves", disk) < sizeof(buf) && (d = opendir(buf))) {
		struct dirent *e;

		r = 0;
		while (!r && (e = readdir(d))) {
			char link[PATH_MAX + 300], real[PATH_MAX];

			if (e->d_name[0] == '.')
				continue;
			snprintf(link, sizeof(link), "%s/%s", buf, e->d_name);
			if (realpath(link, real))
				r = check_dir(root, real, depth + 1, why, n);
		}
		closedir(d);
		if (r)
			return r;
	}
	/* the bus: any ancestor device whose subsystem is a removable bus */
	if ((size_t)snprintf(devices, sizeof(devices), "%s/devices", root) >= sizeof(devices))
		return 0;
	{
		char real_devices[PATH_MAX];

		if (realpath(devices, real_devices))
			snprintf(devices, sizeof(devices), "%s", real_devices);
	}
	snprintf(buf, sizeof(buf), "%s", disk);
	while (strlen(buf) > strlen(devices) && strncmp(buf, devices, strlen(devices)) == 0) {
		char sub[PATH_MAX + 16], target[PATH_MAX];
		ssize_t l;
		char *slash;

		snprintf(sub, sizeof(sub), "%s/subsystem", buf);
		if ((l = readlink(sub, target, sizeof(target) - 1)) > 0) {
			const char *bus;

			target[l] = 0;
			bus = strrchr(target, '/') ? strrchr(target, '/') + 1 : target;
			for (size_t i = 0; i < sizeof(removable_buses) / sizeof(*removable_buses); i++)
				if (strcmp(bus, removable_buses[i]) == 0) {
					say(why, n, "%s: on the %s bus", name, bus);
					return 1;
				}
		}
		if (!(slash = strrchr(buf, '/')))
			break;
		*slash = 0;
	}
	return 0;
}

static int check_major_minor(const char *root, unsigned major, unsigned minor, int depth,
			     char *why, size_t n)
{
	char link[PATH_MAX], real[PATH_MAX];

	if ((size_t)snprintf(link, sizeof(link), "%s/dev/block/%u:%u", root, major, minor) >= sizeof(link))
		return -ENAMETOOLONG;
	if (!realpath(link, real))
		return errno == ENOENT || errno == ENOTDIR ? 0 : -errno;
	return check_dir(root, real, depth, why, n);
}

int kguard_dev_removable(const char *sysfs_root, unsigned major, unsigned minor, char *why,
			 size_t n)
{
	if (!sysfs_root)
		sysfs_root = getenv("KINKO_SYSFS_ROOT");
	if (!sysfs_root || !sysfs_root[0])
		sysfs_root = "/sys";
	if (why && n)
		why[0] = 0;
	return check_major_minor(sysfs_root, major, minor, 0, why, n);
}

/* path made absolute through its nearest existing parent (symlinks resolved) */
static int resolve_nearest(const char *path, char *out, size_t n, struct stat *st)
{
	char cur[PATH_MAX], real[PATH_MAX], rest[PATH_MAX] = "";

	if ((size_t)snprintf(cur, sizeof(cur), "%s", path) >= sizeof(cur))
		return -ENAMETOOLONG;
	for (;;) {
		if (stat(cur, st) == 0 && realpath(cur, real)) {
			if ((size_t)snprintf(out, n, "%s%s%s", strcmp(real, "/") ? real : "",
					     rest[0] ? "/" : "", rest) >= n)
				return -ENAMETOOLONG;
			if (!out[0])
				snprintf(out, n, "/");
			return 0;
		}
		if (errno != ENOENT && errno != ENOTDIR)
			return -errno;
		char *slash = strrchr(cur, '/');
		char tmp[2 * PATH_MAX + 2];
		int l = snprintf(tmp, sizeof(tmp), "%s%s%s", slash ? slash + 1 : cur, rest[0] ? "/" : "", rest);

		if (l < 0 || (size_t)l >= sizeof(rest))
			return -ENAMETOOLONG;
		memcpy(rest, tmp, (size_t)l + 1);
		if (!slash)
			snprintf(cur, sizeof(cur), ".");
		if (!slash)
			continue;
		if (slash == cur)
			slash[1] = 0;
		else
			*slash = 0;
	}
}

int kguard_medium_serial(const struct kguard_conf *c, const char *sysfs_root, const char *path,
			 char *out, size_t n, char *src, size_t srcn)
{
	char abs[PATH_MAX], link[PATH_MAX], dir[PATH_MAX], devices[PATH_MAX];
	struct stat st;
	size_t best = 0, bi = 0;
	int r;

	out[0] = 0;
	if (src && srcn)
		src[0] = 0;
	if ((r = resolve_nearest(path, abs, sizeof(abs), &st)) != 0)
		return r;
	for (size_t i = 0; c && i < c->n_media; i++) {
		size_t l = strlen(c->media_paths[i]);

		struct stat cst;
		char cabs[PATH_MAX];

		/* the configured path and this one on the same file system: a
		 * mount made below the medium's path is another medium */
		if (kguard_path_below((char *const *)&c->media_paths[i], 1, abs) && l > best &&
		    resolve_nearest(c->media_paths[i], cabs, sizeof(cabs), &cst) == 0 &&
		    cst.st_dev == st.st_dev) {
			best = l;
			bi = i;
		}
	}
	if (best) {
		snprintf(out, n, "%s", c->media_serials[bi]);
		if (src && srcn)
			snprintf(src, srcn, "kinko.conf [media] %s", c->media_paths[bi]);
		return 0;
	}
	if (!sysfs_root)
		sysfs_root = getenv("KINKO_SYSFS_ROOT");
	if (!sysfs_root || !sysfs_root[0])
		sysfs_root = "/sys";
	if ((size_t)snprintf(link, sizeof(link), "%s/dev/block/%u:%u", sysfs_root, major(st.st_dev),
			     minor(st.st_dev)) >= sizeof(link) || !realpath(link, dir))
		return -ENOENT;
	snprintf(devices, sizeof(devices), "%s/devices", sysfs_root);
	{
		char rd[PATH_MAX];

		if (realpath(devices, rd))
			snprintf(devices, sizeof(devices), "%s", rd);
	}
	/* dm-crypt, LVM: the device below (the first slave) */
	for (int hop = 0; hop < 8; hop++) {
		char sl[PATH_MAX + 16], link2[PATH_MAX + 300], real[PATH_MAX];
		DIR *d;
		struct dirent *e;
		bool moved = false;

		snprintf(sl, sizeof(sl), "%s/slaves", dir);
		if (!(d = opendir(sl)))
			break;
		while ((e = readdir(d)))
			if (e->d_name[0] != '.') {
				snprintf(link2, sizeof(link2), "%s/%s", sl, e->d_name);
				if (realpath(link2, real)) {
					snprintf(dir, sizeof(dir), "%s", real);
					moved = true;
				}
				break;
			}
		closedir(d);
		if (!moved)
			break;
	}
	/* from the partition or disk up through its parents: the first serial,
	 * but never a hub's (a stick without a serial must not inherit its hub's
	 * or its root hub's, which is the controller's PCI address) */
	for (int depth = 0; depth < 32 && strlen(dir) > strlen(devices) &&
			    strncmp(dir, devices, strlen(devices)) == 0; depth++) {
		char buf[256];
		char *slash;

		if (read_small(dir, "bDeviceClass", buf, sizeof(buf)) == 0 && strcmp(buf, "09") == 0)
			return -ENOENT;
		if ((read_small(dir, "serial", buf, sizeof(buf)) == 0 ||
		     read_small(dir, "device/serial", buf, sizeof(buf)) == 0) && buf[0]) {
			snprintf(out, n, "%s", buf);
			if (src && srcn)
				snprintf(src, srcn, "%s", dir);
			return 0;
		}
		if (!(slash = strrchr(dir, '/')))
			break;
		*slash = 0;
	}
	return -ENOENT;
}
