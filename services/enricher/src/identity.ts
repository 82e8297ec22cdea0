/** Identities already derived, per labels list object (registries hand out the same list per record). */
const known = new WeakMap<readonly string[], { namespace: string; identity: number }>();

/**
 * Numeric security identity for an endpoint's label set, like the identities
 * Hubble prints as `(ID:n)`. Derived, not allocated: the same namespace and
 * labels give the same number on every enricher without coordination. The
 * range is Cilium's cluster-local one (256..65535), so numbers never collide
 * with reserved identities (host=1, world=2, …); two different label sets can
 * share a number (a 1 in ~65k chance per pair). Remembered per `labels` object,
 * which must not change afterwards.
 */
export function labelIdentity(namespace: string, labels: readonly string[]): number {
  const seen = known.get(labels);
  if (seen !== undefined && seen.namespace === namespace) return seen.identity;
  const key = [`k8s:io.kubernetes.pod.namespace=${namespace}`, ...[...labels].sort()].join("\n");
  let h = 0x811c9dc5; // FNV-1a, 32 bit
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  const identity = 256 + (h % (65536 - 256));
  known.set(labels, { namespace, identity });
  return identity;
}
