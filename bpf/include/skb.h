/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * What the tc programs (trace, capture) learn about a packet's device and how
 * they copy a packet into a ring buffer record: kfuncs of Linux 6.3+
 * (bpf_cast_to_kern_ctx, skb dynptrs, bpf_dynptr_copy).
 */
#ifndef __PERISCOPE_SKB_H
#define __PERISCOPE_SKB_H

#define TC_ACT_UNSPEC (-1)

/* Device types without an L2 header on transmit (the kernel's dev_is_mac_header_xmit). */
#define ARPHRD_RAWIP 519
#define ARPHRD_TUNNEL 768
#define ARPHRD_TUNNEL6 769
#define ARPHRD_SIT 776
#define ARPHRD_IPGRE 778
#define ARPHRD_PIMREG 779
#define ARPHRD_IP6GRE 823
#define ARPHRD_NONE 0xFFFE
#define ARPHRD_VOID 0xFFFF

/* Kernel's struct sk_buff behind the __sk_buff context. */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
extern int bpf_dynptr_from_skb(struct __sk_buff *skb, __u64 flags,
			       struct bpf_dynptr *ptr__uninit) __ksym;
extern int bpf_dynptr_copy(struct bpf_dynptr *dst_ptr, __u32 dst_off, struct bpf_dynptr *src_ptr,
			   __u32 src_off, __u32 size) __ksym;

/*
 * Whether the skb's device has no L2 header (the packet starts at the network
 * header); sets *cookie to the device's namespace cookie when it has a device,
 * read from the kernel's struct net_device (bpf_get_netns_cookie() reports the
 * socket's namespace when there is one).
 */
static __always_inline int pscope_device(struct __sk_buff *ctx, __u64 *cookie)
{
	struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
	struct net_device *dev = skb->dev;
	__u16 type;

	if (!dev)
		return 0;
	*cookie = dev->nd_net.net->net_cookie;
	type = dev->type;
	return type == ARPHRD_NONE || type == ARPHRD_TUNNEL || type == ARPHRD_TUNNEL6 ||
	       type == ARPHRD_SIT || type == ARPHRD_IPGRE || type == ARPHRD_IP6GRE ||
	       type == ARPHRD_RAWIP || type == ARPHRD_VOID || type == ARPHRD_PIMREG;
}

/* Fills the common header of a record about `skb` holding `cap` of its bytes. */
static __always_inline void pscope_hdr(struct pscope_hdr *hdr, struct __sk_buff *skb, __u8 type,
				       __u8 subtype, __u8 version, __u8 flags, __u32 cap)
{
	hdr->type = type;
	hdr->subtype = subtype;
	hdr->version = version;
	hdr->flags = flags;
	hdr->source = bpf_get_smp_processor_id();
	hdr->orig_len = skb->len;
	hdr->cap_len = cap;
}

/*
 * Reserves `fixed` + `cap` bytes (cap <= skb->len) in the ring buffer `ring`
 * through `rb` and copies the first `cap` bytes of the packet after the fixed
 * part. Returns the fixed part to fill before bpf_ringbuf_submit_dynptr(), or
 * NULL when nothing could be written (the reservation is discarded then).
 */
static __always_inline void *pscope_reserve_packet(void *ring, struct __sk_buff *skb,
						   struct bpf_dynptr *rb, const __u32 fixed,
						   __u32 cap)
{
	struct bpf_dynptr pkt;
	void *rec;

	if (bpf_ringbuf_reserve_dynptr(ring, fixed + cap, 0, rb) < 0)
		goto discard;
	rec = bpf_dynptr_data(rb, 0, fixed);
	if (!rec)
		goto discard;
	/* cannot fail with cap <= skb->len; keep the record honest */
	if (cap > 0 && (bpf_dynptr_from_skb(skb, 0, &pkt) < 0 ||
			bpf_dynptr_copy(rb, fixed, &pkt, 0, cap) < 0))
		goto discard;
	return rec;
discard:
	bpf_ringbuf_discard_dynptr(rb, 0);
	return 0;
}

#endif /* __PERISCOPE_SKB_H */
