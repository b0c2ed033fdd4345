/* kinko audit internals shared by the writer (audit.c) and the reader (scan.c).
 * Byte layout: kinko-format(5), "Audit log". */
#ifndef KINKO_AUDIT_I_H
#define KINKO_AUDIT_I_H

#include "kinko/audit.h"

#define KAUDIT_MAGIC "kAL\x01"
#define KAUDIT_HEAD_MAGIC "kAH\x01"
#define KAUDIT_HEAD_LEN 93          /* magic 4, sid 16, count 8, tag 32, closed 1, mac 32 */
#define KAUDIT_HEADER_MAX 65536
#define KAUDIT_ENTRY_MAX (64 * 1024) /* plaintext JSON of one entry */
#define KAUDIT_REC_OVERHEAD (4 + 8 + 32)

struct kaudit_recip {
	char id[KFORMAT_USERID_MAX + 1];
	uint8_t pk[32];
};

struct kaudit_seg {
	char rel[192], headrel[200]; /* relative to the vault */
	char month[8];
	uint8_t sid[16];
	uint8_t *keys;               /* secure memory: E (32) || current chain key (32) */
	uint64_t seq;                /* entries on disk */
	uint8_t last_tag[32];
	bool head_dirty;
};

int kaudit_evolve(uint8_t k[32]);
int kaudit_entry_mac(uint8_t mac[32], const uint8_t k[32], const uint8_t sid[16], uint64_t seq,
		     const uint8_t *ct, size_t ctlen);
void kaudit_nonce(uint8_t nonce[24], uint8_t ad[24], const uint8_t sid[16], uint64_t seq);
int kaudit_head_mac(uint8_t mac[32], const uint8_t k[32], const uint8_t *head, size_t len);

#endif
