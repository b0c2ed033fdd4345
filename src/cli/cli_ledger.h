/* kinko CLI: helpers shared by the media, ledger and backup commands. */
#ifndef KINKO_CLI_LEDGER_H
#define KINKO_CLI_LEDGER_H

#include <jansson.h>

#include "cli.h"
#include "kinko/ledger.h"

/* open + unlock (no grants) and require one of the roles (bit mask of 1 << KROLE_*);
 * a refusal is printed and audited under action. 0 or an exit code. */
int cli_open_role(const char *vault, const struct cli_auth *auth, unsigned roles,
		  const char *action, struct kvault **out);
/* the media table from the verified records; *problems = bad records seen */
int cli_ledger_media(struct kvault *v, struct kledger_media *out, size_t *problems);
/* append body (adds "ledger_seq" to it after), write the audit entry; exit code */
int cli_ledger_record(struct kvault *v, const char *action, json_t *body, uint64_t *seq);

/* the take-outs folded from the verified records (cmd_takeout.c); a ledger
 * that cannot be read is named on stderr and returns an exit code */
int cli_ledger_takeouts(struct kvault *v, struct kledger_takeouts *out);

int cmd_media(int argc, char **argv);
int cmd_ledger(int argc, char **argv);
int cmd_backup(int argc, char **argv);

#endif
