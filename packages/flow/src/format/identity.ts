/** Names of Cilium's reserved security identities, as hubble prints them. */
const RESERVED_IDENTITIES: Readonly<Record<number, string>> = {
  0: "unknown",
  1: "host",
  2: "world",
  3: "unmanaged",
  4: "health",
  5: "init",
  6: "remote-node",
  7: "kube-apiserver",
  8: "ingress",
  9: "world-ipv4",
  10: "world-ipv6",
};

/** "(host)" for reserved identities, "(ID:1234)" otherwise — hubble's compact form. */
export function formatIdentity(identity: number): string {
  const name = RESERVED_IDENTITIES[identity];
  return name === undefined ? `(ID:${identity})` : `(${name})`;
}
