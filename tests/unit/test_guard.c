/* Unit tests of the guard module: fake sysfs trees (USB stick, USB disk
 * partition, SD card, internal NVMe, loop devices, dm-crypt on USB), the
 * configuration file, mountinfo parsing, and process inspection with real
 * pipes and socket pairs. */
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <unistd.h>

#include "kt.h"
#include "kinko/guard.h"

static char root[256];

static void mkp(const char *rel)
{
	char p[1024], *s;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	for (s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = 0;
		mkdir(p, 0755);
		*s = '/';
	}
	mkdir(p, 0755);
}

static void put(const char *rel, const char *text)
{
	char p[1024];
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", root, rel);
	assert_non_null(f = fopen(p, "w"));
	fputs(text, f);
	fclose(f);
}

/* relative symlink at root/rel pointing to root/target */
static void lnk(const char *rel, const char *target)
{
	char p[1024], t[1024];
	int depth = 0;

	for (const char *s = rel; *s; s++)
		depth += *s == '/';
	t[0] = 0;
	for (int i = 0; i < depth; i++)
		strcat(t, "../");
	strcat(t, target);
	snprintf(p, sizeof(p), "%s/%s", root, rel);
	unlink(p);
	assert_int_equal(symlink(t, p), 0);
}

#define USB_IF "devices/pci0000:00/0000:00:14.0/usb1/1-1/1-1:1.0"
#define USB_DISK USB_IF "/host2/target2:0:0/2:0:0:0/block/sdb"
#define USB_STICK USB_IF "/host3/target3:0:0/3:0:0:0/block/sdc"
#define MMC_DISK "devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001/block/mmcblk0"
#define NVME_DISK "devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0/nvme0n1"
#define SATA_DISK "devices/pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0/block/sda"

static int tree_setup(void **state)
{
	(void)state;
	snprintf(root, sizeof(root), "/tmp/kinko-sysfs-XXXXXX");
	assert_non_null(mkdtemp(root));
	mkp("bus/usb");
	mkp("bus/mmc");
	mkp("bus/pci");
	mkp("bus/scsi");
	mkp("dev/block");
	/* USB: the bus device and the interface are on the usb bus */
	mkp(USB_DISK "/sdb1");
	lnk("devices/pci0000:00/0000:00:14.0/subsystem", "bus/pci");
	lnk("devices/pci0000:00/0000:00:14.0/usb1/subsystem", "bus/usb");
	lnk("devices/pci0000:00/0000:00:14.0/usb1/1-1/subsystem", "bus/usb");
	lnk(USB_IF "/subsystem", "bus/usb");
	lnk(USB_IF "/host2/target2:0:0/2:0:0:0/subsystem", "bus/scsi");
	put(USB_DISK "/removable", "0\n"); /* a USB hard disk: the bus decides */
	put(USB_DISK "/sdb1/partition", "1\n");
	lnk("dev/block/8:16", USB_DISK);
	lnk("dev/block/8:17", USB_DISK "/sdb1");
	/* a USB stick with the removable flag */
	mkp(USB_STICK);
	put(USB_STICK "/removable", "1\n");
	lnk("dev/block/8:32", USB_STICK);
	/* SD card on an MMC host */
	mkp(MMC_DISK "/mmcblk0p1");
	lnk("devices/platform/soc/fe340000.mmc/mmc_host/mmc0/subsystem", "bus/mmc");
	lnk("devices/platform/soc/fe340000.mmc/mmc_host/mmc0/mmc0:0001/subsystem", "bus/mmc");
	put(MMC_DISK "/removable", "0\n");
	put(MMC_DISK "/mmcblk0p1/partition", "1\n");
	lnk("dev/block/179:0", MMC_DISK);
	lnk("dev/block/179:1", MMC_DISK "/mmcblk0p1");
	/* internal NVMe and SATA */
	mkp(NVME_DISK "/nvme0n1p2");
	lnk("devices/pci0000:00/0000:00:1d.0/subsystem", "bus/pci");
	lnk("devices/pci0000:00/0000:00:1d.0/0000:3d:00.0/subsystem", "bus/pci");
	put(NVME_DISK "/removable", "0\n");
	put(NVME_DISK "/nvme0n1p2/partition", "2\n");
	lnk("dev/block/259:0", NVME_DISK);
	lnk("dev/block/259:2", NVME_DISK "/nvme0n1p2");
	mkp(SATA_DISK);
	put(SATA_DISK "/removable", "0\n");
	lnk("dev/block/8:0", SATA_DISK);
	/* loop devices: no backing file; one backed by a file on no block device */
	mkp("devices/virtual/block/loop0");
	put("devices/virtual/block/loop0/removable", "0\n");
	lnk("dev/block/7:0", "devices/virtual/block/loop0");
	mkp("devices/virtual/block/loop1/loop");
	put("devices/virtual/block/loop1/removable", "0\n");
	put("devices/virtual/block/loop1/loop/backing_file", "/proc/self/status\n");
	lnk("dev/block/7:1", "devices/virtual/block/loop1");
	/* dm-crypt on the USB disk's partition; LVM on NVMe */
	mkp("devices/virtual/block/dm-0/slaves");
	put("devices/virtual/block/dm-0/removable", "0\n");
	lnk("devices/virtual/block/dm-0/slaves/sdb1", USB_DISK "/sdb1");
	lnk("dev/block/253:0", "devices/virtual/block/dm-0");
	mkp("devices/virtual/block/dm-1/slaves");
	put("devices/virtual/block/dm-1/removable", "0\n");
	lnk("devices/virtual/block/dm-1/slaves/nvme0n1p2", NVME_DISK "/nvme0n1p2");
	lnk("dev/block/253:1", "devices/virtual/block/dm-1");
	/* dm on dm on USB (LVM inside LUKS) */
	mkp("devices/virtual/block/dm-2/slaves");
	lnk("devices/virtual/block/dm-2/slaves/dm-0", "devices/virtual/block/dm-0");
	lnk("dev/block/253:2", "devices/virtual/block/dm-2");
	return 0;
}

static int tree_teardown(void **state)
{
	char cmd[400];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static int rem(unsigned ma, unsigned mi, char *why)
{
	return kguard_dev_removable(root, ma, mi, why, 200);
}

static void test_usb(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(rem(8, 16, why), 1);  /* USB disk: bus */
	assert_non_null(strstr(why, "usb"));
	assert_int_equal(rem(8, 17, why), 1);  /* its partition */
	assert_non_null(strstr(why, "sdb"));
	assert_int_equal(rem(8, 32, why), 1);  /* USB stick: flag */
	assert_non_null(strstr(why, "removable flag"));
}

static void test_sd(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(rem(179, 0, why), 1);
	assert_non_null(strstr(why, "mmc"));
	assert_int_equal(rem(179, 1, why), 1);
}

static void test_internal(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(rem(259, 0, why), 0);
	assert_int_equal(rem(259, 2, why), 0);
	assert_int_equal(rem(8, 0, why), 0);
	assert_int_equal(rem(253, 1, why), 0); /* LVM on NVMe */
	assert_int_equal(rem(9, 9, why), 0);   /* no such device */
}

static void test_loop(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(rem(7, 0, why), 0);
	assert_int_equal(rem(7, 1, why), 0);
}

/* a loop device backed by a file whose device the fake tree calls a USB disk */
static void test_loop_on_usb(void **state)
{
	struct kguard_mounts ms;
	char path[600], rel[64];
	struct stat st;
	bool found = false;

	(void)state;
	assert_int_equal(kguard_mounts_read(NULL, &ms), 0);
	for (size_t i = 0; i < ms.n && !found; i++)
		if (ms.m[i].major != 0 && stat(ms.m[i].mountpoint, &st) == 0 && major(st.st_dev) != 0 &&
		    S_ISDIR(st.st_mode)) {
			snprintf(path, sizeof(path), "%s", ms.m[i].mountpoint);
			found = true;
		}
	kguard_mounts_free(&ms);
	if (!found)
		skip(); /* no block-device file system on this machine */
	mkp("devices/virtual/block/loop5/loop");
	put("devices/virtual/block/loop5/removable", "0\n");
	put("devices/virtual/block/loop5/loop/backing_file", path);
	lnk("dev/block/7:5", "devices/virtual/block/loop5");
	snprintf(rel, sizeof(rel), "dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	lnk(rel, USB_DISK);
	assert_int_equal(rem(7, 5, NULL), 1);
	snprintf(path, sizeof(path), "%s/%s", root, rel);
	unlink(path);
	assert_int_equal(rem(7, 5, NULL), 0);
}

static void test_dm_on_usb(void **state)
{
	char why[200];

	(void)state;
	assert_int_equal(rem(253, 0, why), 1);
	assert_non_null(strstr(why, "usb"));
	assert_int_equal(rem(253, 2, why), 1);
}

static void test_env_root(void **state)
{
	(void)state;
	setenv("KINKO_SYSFS_ROOT", root, 1);
	assert_int_equal(kguard_dev_removable(NULL, 8, 32, NULL, 0), 1);
	assert_int_equal(kguard_dev_removable(NULL, 259, 0, NULL, 0), 0);
	unsetenv("KINKO_SYSFS_ROOT");
}

/* ---- configuration ---- */

static void conf_file(const char *text, char *path)
{
	snprintf(path, 512, "%s/kinko.conf", root);
	put("kinko.conf", text);
}

static void test_conf(void **state)
{
	struct kguard_conf c;
	struct kerrinfo ei = { "", "" };
	char path[512];

	(void)state;
	conf_file("# workstation\nremovable_paths = /media/usb1, /run/media/ ,/mnt/sd\n"
		  "vault_paths=/srv/vault\n[guard]\nvault_paths = /home/v2\n[other]\nx = y\n", path);
	assert_int_equal(kguard_conf_load(path, &c, &ei), 0);
	assert_int_equal(c.n_removable, 3);
	assert_string_equal(c.removable_paths[0], "/media/usb1");
	assert_string_equal(c.removable_paths[1], "/run/media");
	assert_string_equal(c.removable_paths[2], "/mnt/sd");
	assert_int_equal(c.n_vault, 2);
	assert_string_equal(c.vault_paths[1], "/home/v2");
	assert_true(kguard_path_below(c.removable_paths, c.n_removable, "/run/media"));
	assert_true(kguard_path_below(c.removable_paths, c.n_removable, "/run/media/x/y"));
	assert_false(kguard_path_below(c.removable_paths, c.n_removable, "/run/mediax"));
	assert_false(kguard_path_below(c.removable_paths, c.n_removable, "/run"));
	kguard_conf_free(&c);

	conf_file("removable_paths = relative/path\n", path);
	assert_int_equal(kguard_conf_load(path, &c, &ei), -EINVAL);
	assert_non_null(strstr(ei.detail, "not an absolute path"));
	conf_file("removeable_paths = /media\n", path);
	assert_int_equal(kguard_conf_load(path, &c, &ei), -EINVAL);
	assert_non_null(strstr(ei.detail, "unknown key"));
	conf_file("removable_paths /media\n", path);
	assert_int_equal(kguard_conf_load(path, &c, &ei), -EINVAL);
	assert_non_null(strstr(ei.detail, "line 1"));
	snprintf(path, sizeof(path), "%s/missing.conf", root);
	assert_int_equal(kguard_conf_load(path, &c, &ei), -ENOENT);
}

/* the serial of the medium under a path: a [media] entry, else sysfs */
static void test_medium_serial(void **state)
{
	struct kguard_conf c;
	struct kerrinfo ei = { "", "" };
	struct stat st;
	char path[512], serial[160], src[600], dev[64], sub[600];

	(void)state;
	/* the fake tree's own directory plays the USB stick */
	assert_int_equal(stat(root, &st), 0);
	put("devices/pci0000:00/0000:00:14.0/usb1/1-1/serial", "0401ABCDEF\n");
	snprintf(dev, sizeof(dev), "dev/block/%u:%u", major(st.st_dev), minor(st.st_dev));
	lnk(dev, USB_STICK);
	snprintf(sub, sizeof(sub), "%s/not/made/yet", root);
	assert_int_equal(kguard_medium_serial(NULL, root, sub, serial, sizeof(serial), src, sizeof(src)), 0);
	assert_string_equal(serial, "0401ABCDEF");
	assert_non_null(strstr(src, "1-1"));
	/* a configured serial wins, for the path and below it only */
	snprintf(path, sizeof(path), "%s/media.conf", root);
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f, "[media]\nSIM-1 = %s/not\nSIM-2 = %s/not/made\n", root, root);
		fclose(f);
	}
	assert_int_equal(kguard_conf_load(path, &c, &ei), 0);
	assert_int_equal(c.n_media, 2);
	assert_int_equal(kguard_medium_serial(&c, root, sub, serial, sizeof(serial), src, sizeof(src)), 0);
	assert_string_equal(serial, "SIM-2"); /* the longest match */
	snprintf(sub, sizeof(sub), "%s/not/other", root);
	assert_int_equal(kguard_medium_serial(&c, root, sub, serial, sizeof(serial), src, sizeof(src)), 0);
	assert_string_equal(serial, "SIM-1");
	assert_non_null(strstr(src, "kinko.conf"));
	snprintf(sub, sizeof(sub), "%s/nothere", root);
	assert_int_equal(kguard_medium_serial(&c, root, sub, serial, sizeof(serial), src, sizeof(src)), 0);
	assert_string_equal(serial, "0401ABCDEF");
	kguard_conf_free(&c);
	/* a stick without a serial under a hub: not the hub's serial */
	put("devices/pci0000:00/0000:00:14.0/usb1/bDeviceClass", "09\n");
	put("devices/pci0000:00/0000:00:14.0/usb1/serial", "0000:00:14.0\n");
	unlink(strcat(strcpy(sub, root), "/devices/pci0000:00/0000:00:14.0/usb1/1-1/serial"));
	assert_int_equal(kguard_medium_serial(NULL, root, root, serial, sizeof(serial), src, sizeof(src)), -ENOENT);
	put("devices/pci0000:00/0000:00:14.0/usb1/1-1/serial", "0401ABCDEF\n");
	/* LVM in LUKS on the USB disk: the serial of the disk below */
	lnk(dev, "devices/virtual/block/dm-2");
	assert_int_equal(kguard_medium_serial(NULL, root, root, serial, sizeof(serial), src, sizeof(src)), 0);
	assert_string_equal(serial, "0401ABCDEF");
	/* no serial anywhere up the device chain */
	lnk(dev, SATA_DISK);
	assert_int_equal(kguard_medium_serial(NULL, root, root, serial, sizeof(serial), src, sizeof(src)), -ENOENT);
	/* a bad [media] entry */
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f, "[media]\nSIM-1 = relative\n");
		fclose(f);
	}
	assert_int_equal(kguard_conf_load(path, &c, &ei), -EINVAL);
	/* two paths for one serial (overflowed a one-slot array once) */
	{
		FILE *f = fopen(path, "w");

		assert_non_null(f);
		fprintf(f, "[media]\nSIM-1 = /a,/b,/c,/d,/e,/f,/g,/h,/i\n");
		fclose(f);
	}
	assert_int_equal(kguard_conf_load(path, &c, &ei), -EINVAL);
	assert_non_null(strstr(ei.detail, "exactly one"));
}

static void test_mountinfo(void **state)
{
	struct kguard_mounts ms;
	const struct kguard_mount *m;
	char path[512];

	(void)state;
	snprintf(path, sizeof(path), "%s/mountinfo", root);
	put("mountinfo",
	    "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw\n"
	    "40 22 8:17 / /media/my\\040stick rw,nosuid shared:2 - vfat /dev/sdb1 rw\n"
	    "41 22 0:50 / /home/a/mnt rw,nosuid,nodev shared:3 - fuse.kinko kinko:/home/a/vault rw,user_id=0\n"
	    "42 40 0:51 / /media/my\\040stick/sub rw - tmpfs tmpfs rw\n"
	    "garbage line\n");
	assert_int_equal(kguard_mounts_read(path, &ms), 0);
	assert_int_equal(ms.n, 4);
	assert_string_equal(ms.m[1].mountpoint, "/media/my stick");
	assert_int_equal(ms.m[1].major, 8);
	assert_int_equal(ms.m[1].minor, 17);
	assert_int_equal(ms.m[1].id, 40);
	m = kguard_mount_of(&ms, "/media/my stick/a/b");
	assert_non_null(m);
	assert_string_equal(m->fstype, "vfat");
	m = kguard_mount_of(&ms, "/media/my stick/sub/x");
	assert_string_equal(m->fstype, "tmpfs");
	m = kguard_mount_of(&ms, "/media/my sticky");
	assert_string_equal(m->fstype, "ext4");
	m = kguard_mount_by_id(&ms, 41);
	assert_true(kguard_mount_is_kinko(m));
	assert_string_equal(kguard_mount_vault(m), "/home/a/vault");
	assert_null(kguard_mount_vault(&ms.m[1]));
	kguard_mounts_free(&ms);
}

/* ---- processes: real pipes and socket pairs ---- */

/* a child that opens path for writing, holds fd `in` (its end of a channel),
 * signals readiness and waits */
static pid_t child_writing(const char *path, int keep, int drop, int *ready)
{
	int p[2];
	pid_t pid;

	assert_int_equal(pipe(p), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		close(p[0]);
		if (drop >= 0)
			close(drop);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		(void)fd;
		(void)keep;
		if (write(p[1], "x", 1) != 1)
			_exit(1);
		pause();
		_exit(0);
	}
	close(p[1]);
	*ready = p[0];
	{
		char c;

		assert_int_equal(read(p[0], &c, 1), 1);
	}
	return pid;
}

static void reap(pid_t pid, int ready)
{
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (ready >= 0)
		close(ready);
}

static struct kguard *guard_for(const char *removable_dir)
{
	struct kguard *g;
	char path[512], text[600];

	snprintf(text, sizeof(text), "removable_paths = %s\n", removable_dir);
	conf_file(text, path);
	assert_int_equal(kguard_new(path, &g, NULL), 0);
	return g;
}

static void test_pipe_downstream(void **state)
{
	char media[300], local[300], f[400], why[200];
	int p[2], ready;
	struct kguard *g;
	pid_t c;

	(void)state;
	snprintf(media, sizeof(media), "%s/media", root);
	snprintf(local, sizeof(local), "%s/local", root);
	mkdir(media, 0755);
	mkdir(local, 0755);
	g = guard_for(media);
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 0);

	/* we write into a pipe; the child reads it and writes to the medium */
	assert_int_equal(pipe(p), 0);
	snprintf(f, sizeof(f), "%s/x", media);
	c = child_writing(f, p[0], p[1], &ready);
	close(p[0]);
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 1);
	assert_non_null(strstr(why, "/media/x"));
	/* the other direction: the child does not feed us */
	assert_int_equal(kguard_writes_removable(g, c, why, sizeof(why)), 1); /* itself */
	reap(c, ready);
	close(p[1]);

	/* the same to a local directory is fine */
	assert_int_equal(pipe(p), 0);
	snprintf(f, sizeof(f), "%s/x", local);
	c = child_writing(f, p[0], p[1], &ready);
	close(p[0]);
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 0);
	reap(c, ready);
	close(p[1]);

	/* we only read from the child's pipe: it does not get our data */
	assert_int_equal(pipe(p), 0);
	snprintf(f, sizeof(f), "%s/y", media);
	c = child_writing(f, p[1], p[0], &ready);
	close(p[1]);
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 0);
	reap(c, ready);
	close(p[0]);
	kguard_free(g);
}

static void test_socketpair_downstream(void **state)
{
	char media[300], f[400], why[200];
	int sp[2], ready;
	struct kguard *g;
	pid_t c;

	(void)state;
	snprintf(media, sizeof(media), "%s/media", root);
	mkdir(media, 0755);
	g = guard_for(media);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sp), 0);
	snprintf(f, sizeof(f), "%s/s", media);
	c = child_writing(f, sp[1], sp[0], &ready);
	close(sp[1]);
	/* we hold sp[0], the child holds the peer sp[1] (another inode) */
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 1);
	assert_non_null(strstr(why, "/media/s"));
	reap(c, ready);
	assert_int_equal(kguard_writes_removable(g, getpid(), why, sizeof(why)), 0);
	close(sp[0]);
	kguard_free(g);
}

struct find {
	const char *needle;
	pid_t pid;
};

static int find_path(void *arg, const struct kguard_fd *fd)
{
	struct find *x = arg;

	if (strstr(fd->path, x->needle)) {
		x->pid = fd->pid;
		return 1;
	}
	return 0;
}

/* a chain parent -> child -> grandchild through two pipes: the grandchild's
 * upstream reaches a file only the parent holds */
static void test_upstream_transitive(void **state)
{
	char marker[400];
	int a[2], b[2], held, ready;
	pid_t c, middle;
	struct find x = { "held-marker", 0 };

	(void)state;
	snprintf(marker, sizeof(marker), "%s/held-marker", root);
	assert_int_equal(pipe(a), 0);
	assert_int_equal(pipe(b), 0);
	middle = c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		/* middle: reads a, writes b (a relay like `cat | tee`) */
		close(a[1]);
		close(b[0]);
		pause();
		_exit(0);
	}
	{
		char f[400];

		close(a[0]);
		close(b[1]);
		snprintf(f, sizeof(f), "%s/dummy", root);
		/* grandchild: reads b */
		c = child_writing(f, b[0], a[1], &ready);
		close(b[0]);
	}
	/* only we hold the marker (opened after the forks) */
	assert_true((held = open(marker, O_RDONLY | O_CREAT, 0600)) >= 0);
	assert_int_equal(kguard_proc_walk(c, KGUARD_UPSTREAM, find_path, &x), 1);
	assert_int_equal(x.pid, getpid());
	x.pid = 0;
	assert_int_equal(kguard_proc_walk(c, KGUARD_SELF, find_path, &x), 0);
	/* downstream of the grandchild: only us, through its readiness pipe */
	assert_int_equal(kguard_proc_walk(c, KGUARD_DOWNSTREAM, find_path, &x), 1);
	close(ready);
	ready = -1;
	assert_int_equal(kguard_proc_walk(c, KGUARD_DOWNSTREAM, find_path, &x), 0);
	reap(c, ready);
	close(a[1]);
	close(held);
	kill(middle, SIGKILL);
	waitpid(middle, NULL, 0);
}

static void test_proc_fields(void **state)
{
	(void)state;
	assert_int_equal(kguard_proc_ppid(getpid()), getppid());
	assert_true(kguard_proc_start(getpid()) > 0);
	assert_int_equal(kguard_proc_start(999999999), 0);
	assert_true(kguard_proc_walk(999999999, KGUARD_DOWNSTREAM, find_path, NULL) < 0);
}

static void test_register_no_guard(void **state)
{
	char sock[400];

	(void)state;
	snprintf(sock, sizeof(sock), "%s/no-guard.sock", root);
	setenv("KINKO_GUARD_SOCKET", sock, 1);
	assert_string_equal(kguard_socket_path(), sock);
	assert_int_equal(kguard_register_job("backup", "USB-1", "/media/x", "bob", "/v", NULL), -ENOENT);
	unsetenv("KINKO_GUARD_SOCKET");
	assert_string_equal(kguard_socket_path(), KGUARD_SOCKET_DEFAULT);
}

/* a thread blocked in open() (of a FIFO nobody reads) is seen with the
 * flags and the resolved path of that open */
static void test_thread_opening(void **state)
{
	char fifo[500], got[600], dir[400];
	long flags = 0;
	pid_t c;
	int r = 0;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/fifo-dir", root);
	mkdir(dir, 0755);
	snprintf(fifo, sizeof(fifo), "%s/fifo", dir);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	c = fork();
	assert_true(c >= 0);
	if (c == 0) {
		if (chdir(dir) != 0)
			_exit(1);
		/* relative, with a detour the lexical normalisation removes */
		open("../fifo-dir/./fifo", O_WRONLY | O_APPEND);
		_exit(0);
	}
	for (int i = 0; i < 200; i++) {
		r = kguard_thread_opening(c, c, &flags, got, sizeof(got));
		if (r == 1)
			break;
		usleep(10000);
	}
	assert_int_equal(r, 1);
	assert_int_equal(flags & O_ACCMODE, O_WRONLY);
	assert_true(flags & O_APPEND);
	assert_string_equal(got, fifo);
	assert_int_equal(kguard_thread_opening(getpid(), getpid(), &flags, got, sizeof(got)), 0);
	kill(c, SIGKILL);
	waitpid(c, NULL, 0);
	unlink(fifo);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_usb),
		cmocka_unit_test(test_sd),
		cmocka_unit_test(test_internal),
		cmocka_unit_test(test_loop),
		cmocka_unit_test(test_loop_on_usb),
		cmocka_unit_test(test_dm_on_usb),
		cmocka_unit_test(test_env_root),
		cmocka_unit_test(test_conf),
		cmocka_unit_test(test_medium_serial),
		cmocka_unit_test(test_mountinfo),
		cmocka_unit_test(test_pipe_downstream),
		cmocka_unit_test(test_socketpair_downstream),
		cmocka_unit_test(test_upstream_transitive),
		cmocka_unit_test(test_proc_fields),
		cmocka_unit_test(test_thread_opening),
		cmocka_unit_test(test_register_no_guard),
	};

	return cmocka_run_group_tests_name("guard", tests, tree_setup, tree_teardown);
}
