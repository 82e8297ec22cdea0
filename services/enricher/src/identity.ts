/**
 * Numeric security identity for an endpoint's label set, like the identities
 * Hubble prints as `(ID:n)`. Derived, not allocated: the same namespace and
 * labels give the same number on every enricher without coordination. The
 * range is Cilium's cluster-local one (256..65535), so numbers never collide
 * with reserved identities (host=1, world=2, …); two different label sets can
 * share a number (a 1 in ~65k chance per pair).
 */
export function labelIdentity(namespace: string, labels: readonly string[]): number {
  const key = [`k8s:io.kubernetes.pod.namespace=${namespace}`, ...[...labels].sort()].join("\n");
  let h = 0x811c9dc5; // FNV-1a, 32 bit
  for (let i = 0; i < key.length; i++) {
    h ^= key.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return 256 + (h % (65536 - 256));
}
