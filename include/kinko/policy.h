/* kinko policy: users, roles, compartments, epochs, grants and settings, as a
 * JSON body inside a signed envelope (policy/policy.<serial>). Loading verifies
 * the root signature (root key authenticated by the user's key file) and the
 * signing admin's own signature. */
#ifndef KINKO_POLICY_H
#define KINKO_POLICY_H

#include <stdbool.h>
#include <stdint.h>

#include "kinko/format.h"

enum krole { KROLE_STAFF = 0, KROLE_ADMIN, KROLE_AUDITOR, KROLE_BACKUP };
enum kclass { KCLASS_GOKUHI = 0, KCLASS_HIMITSU, KCLASS_SHAGAIHI };

const char *krole_name(int role);
int krole_from_name(const char *s);
const char *kclass_name(int c);
int kclass_from_name(const char *s);

#define KPOLICY_TEXT_MAX 255 /* bytes of a name, department, contact */

struct kpolicy_user {
	char id[KFORMAT_USERID_MAX + 1];
	int role;
	bool active;
	char *name, *dept, *contact;
	uint8_t box_pk[32];
	uint8_t sign_pk[32];
	int64_t created;
	int64_t password_changed;
	uint32_t unlock_gen;      /* bumped by "kinko user enable": clears failed-unlock lockouts */
	bool has_cert;            /* second factor bound to a certificate */
	uint8_t cert_sha256[32];
};

struct kpolicy_epoch {
	uint32_t epoch;
	uint8_t commitment[32];
	int64_t created;
};

struct kpolicy_comp {
	uint8_t id[KFORMAT_ID_BYTES];
	char hexid[2 * KFORMAT_ID_BYTES + 1];
	char *name;
	int klass;
	uint32_t current_epoch;
	struct kpolicy_epoch *epochs;
	size_t nepochs;
};

struct kpolicy_grant {
	char user[KFORMAT_USERID_MAX + 1];
	uint8_t comp[KFORMAT_ID_BYTES];
	bool read_only;
};

struct kpolicy {
	uint8_t vault_id[KFORMAT_ID_BYTES];
	uint64_t serial;
	int64_t updated;
	char updated_by[KFORMAT_USERID_MAX + 1];
	struct kpolicy_user *users;
	size_t nusers;
	struct kpolicy_comp *comps;
	size_t ncomps;
	struct kpolicy_grant *grants;
	size_t ngrants;
	void *settings; /* json_t object, owned */
};

struct kpolicy *kpolicy_new(const uint8_t vault_id[16]);
void kpolicy_free(struct kpolicy *p);
int kpolicy_parse_body(const uint8_t *body, size_t len, struct kpolicy **out,
		       struct kerrinfo *ei) __attribute__((warn_unused_result));
int kpolicy_to_json(const struct kpolicy *p, char **body, size_t *len)
	__attribute__((warn_unused_result));

struct kpolicy_user *kpolicy_user_find(const struct kpolicy *p, const char *id);
struct kpolicy_comp *kpolicy_comp_find(const struct kpolicy *p, const uint8_t id[16]);
struct kpolicy_comp *kpolicy_comp_find_name(const struct kpolicy *p, const char *name);
const struct kpolicy_epoch *kpolicy_epoch_find(const struct kpolicy_comp *c, uint32_t epoch);
const struct kpolicy_grant *kpolicy_grant_find(const struct kpolicy *p, const char *user,
					       const uint8_t comp[16]);

int kpolicy_user_add(struct kpolicy *p, const struct kpolicy_user *u);
int kpolicy_comp_add(struct kpolicy *p, const uint8_t id[16], const char *name, int klass);
int kpolicy_epoch_add(struct kpolicy_comp *c, uint32_t epoch, const uint8_t commitment[32],
		      int64_t created);
int kpolicy_grant_set(struct kpolicy *p, const char *user, const uint8_t comp[16], bool read_only);

/* Load the newest policy of the vault at vfd: highest serial in policy/.
 * Verifies the root signature, the vault id, the serial in the body and the
 * signer's own signature (the signer must be an active admin of that policy). */
int kpolicy_load(int vfd, const uint8_t vault_id[16], const uint8_t root_pk[32],
		 struct kpolicy **out, struct kerrinfo *ei) __attribute__((warn_unused_result));
/* The same checks on a policy file already read (buf, len: at most
 * KPOLICY_FILE_MAX), which must be serial `serial`; path names it in errors. */
#define KPOLICY_FILE_MAX (KFORMAT_POLICY_BODY_MAX + 4096)
int kpolicy_open(const uint8_t *buf, size_t len, uint64_t serial, const uint8_t vault_id[16],
		 const uint8_t root_pk[32], const char *path, struct kpolicy **out,
		 struct kerrinfo *ei) __attribute__((warn_unused_result));
/* Write p as serial p->serial (exclusive create: a concurrent writer loses
 * with -EEXIST), signed by signer (admin) and the root key. */
int kpolicy_store(int vfd, struct kpolicy *p, const char *signer, const uint8_t signer_sk[64],
		  const uint8_t root_sk[64], struct kerrinfo *ei) __attribute__((warn_unused_result));


/* ---- settings (policy.settings), with documented defaults (kinko-policy(1)) ---- */
enum kpolicy_pwmode { KPW_EXPIRING = 0, KPW_LONG, KPW_TWOFACTOR };
struct kpolicy_settings {
	int max_admins;           /* admin.max (2) */
	int pw_mode;              /* password.mode (expiring) */
	int pw_min_length;        /* password.min_length (8) */
	int pw_long_min_length;   /* password.long_min_length (13) */
	int pw_max_age_days;      /* password.max_age_days (60) */
	int pw_warn_days;         /* password.warn_days (7) */
	int unlock_max_failures;  /* unlock.max_failures (5) */
	int unlock_delay_ms;      /* unlock.delay_ms (1000): doubles per failure, capped at 30 s */
	bool second_factor_class[3]; /* second_factor.classes ([]: none until the CA is set) */
	int audit_retention_years;  /* audit.retention_years (5) */
	int idle_lock;              /* lock.idle_seconds (300), at most lock.idle_max_seconds */
	int idle_max;               /* lock.idle_max_seconds (300) */
	int an_files_limit, an_files_window;     /* anomaly.files_* (5000 distinct files / 600 s; 0 off) */
	int an_read_mib_limit, an_read_window;   /* anomaly.read_* (20480 MiB / 600 s; 0 off) */
	int an_denials_limit, an_denials_window; /* anomaly.denials_* (200 / 600 s; 0 off) */
	int hours_from, hours_until; /* anomaly.hours in minutes of the day; -1: any time */
	int takeout_max_days;        /* takeout.max_days (30): longest take-out period */
	const char *alert_command;   /* alert_command (run with the alert as JSON on stdin) or NULL */
};
void kpolicy_settings_get(const struct kpolicy *p, struct kpolicy_settings *s);
/* the whole-number settings (key, int field of kpolicy_settings, default, range) */
struct kpolicy_int_setting {
	const char *key;
	size_t offset;
	int def;
	long lo, hi;
};
extern const struct kpolicy_int_setting kpolicy_int_settings[]; /* ends with key NULL */
/* "kinko policy set KEY VALUE": validate and store; KERR_USAGE with why on bad input */
int kpolicy_setting_set(struct kpolicy *p, const char *key, const char *value, char *why,
			size_t whylen) __attribute__((warn_unused_result));
/* the documented keys, NULL-terminated, for help and completion */
extern const char *const kpolicy_setting_keys[];
/* CA certificate (DER) for second factors, or NULL */
int kpolicy_ca_cert(const struct kpolicy *p, uint8_t **der, size_t *len);
int kpolicy_set_ca_cert(struct kpolicy *p, const uint8_t *der, size_t len);

/* IDs that look shared or default (admin, root, guest, ...) plus ids.forbidden */
bool kpolicy_id_forbidden(const struct kpolicy *p, const char *id);
extern const char *const kpolicy_default_forbidden_ids[];
/* Password rules of the policy for user id. old: the previous password (may be
 * NULL). has_factor: the user has a second factor. 0 or KERR_POLICY with the
 * broken rule in why. */
int kpolicy_password_check(const struct kpolicy *p, const char *id, const char *pw, size_t len,
			   const char *old, size_t oldlen, bool has_factor, char *why, size_t whylen);
/* password age: 0 ok, 1 within the warning window (*days_left set), KERR_EXPIRED */
int kpolicy_password_age(const struct kpolicy *p, int64_t changed, int64_t now, int *days_left);
int kpolicy_count_admins(const struct kpolicy *p);
int kpolicy_grant_remove(struct kpolicy *p, const char *user, const uint8_t comp[16]);
/* removes the user and every grant of theirs */
int kpolicy_user_remove(struct kpolicy *p, const char *id);

#endif
