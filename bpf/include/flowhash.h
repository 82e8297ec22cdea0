/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * The symmetric flow hash every record carries (flow_hash): equal for both
 * directions of a connection, so the collector puts all records of one
 * connection (trace, drop, policy verdict) into the same partition.
 * Non-first IPv4 fragments are hashed without ports; callers pass ports 0
 * for every fragment of a datagram so all of them land together.
 */
#ifndef __PERISCOPE_FLOWHASH_H
#define __PERISCOPE_FLOWHASH_H

/* murmur3 finalizer: spreads every input bit over the whole word. */
static __always_inline __u32 fmix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

static __always_inline __u32 mix_word(__u32 h, __u32 w)
{
	return fmix32(h ^ w) * 31 + w;
}

/* Hashes one endpoint (address words + port). */
static __always_inline __u32 endpoint_hash(const __u32 *addr, int words, __u16 port)
{
	__u32 h = 0x9e3779b9;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++) {
		if (i < words)
			h = mix_word(h, addr[i]);
	}
	return mix_word(h, port);
}

/* Combines the two endpoint hashes in a fixed order (smaller first). */
static __always_inline __u32 flow_hash_combine(__u32 a, __u32 b, __u8 proto)
{
	__u32 lo = a < b ? a : b;
	__u32 hi = a < b ? b : a;
	__u32 h = fmix32(mix_word(mix_word(0x85ebca6b ^ proto, lo), hi));

	return h ? h : 1; /* 0 means "not IP" */
}

#endif /* __PERISCOPE_FLOWHASH_H */
