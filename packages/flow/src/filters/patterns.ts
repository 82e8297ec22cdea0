/**
 * Hubble's FQDN and node-name patterns: lower-case names where `*` matches
 * any run of name characters; one trailing dot is ignored. Node-name patterns
 * are "[cluster/]node", each part an FQDN pattern and an empty part matching
 * anything.
 */

const FQDN_RE = "(?:[-0-9_a-z]+(?:\\.[-0-9_a-z]+)*)";

/** Regular expression source for one FQDN pattern; throws Error naming the problem. */
function fqdnPatternSource(pattern: string): string {
  let p = pattern.trim().toLowerCase();
  if (p.endsWith(".")) p = p.slice(0, -1);
  if (p === "") throw new Error("empty pattern");
  if (p.endsWith(".")) throw new Error("multiple trailing dots in pattern");
  let out = "";
  for (const ch of p) {
    if (ch === ".") out += "\\.";
    else if (ch === "*") out += "[-.0-9a-z]*";
    else if (/[-0-9_a-z]/.test(ch)) out += ch;
    else throw new Error(`invalid character ${JSON.stringify(ch)} in pattern`);
  }
  return out;
}

/** One regular expression matching any of the FQDN patterns, whole string. */
export function compileFqdnPatterns(patterns: readonly string[]): RegExp {
  return new RegExp(`^(?:${patterns.map(fqdnPatternSource).join("|")})$`);
}

/** One regular expression matching "cluster/node" names against node patterns. */
export function compileNodeNamePatterns(patterns: readonly string[]): RegExp {
  const parts = patterns.map((pattern) => {
    if (pattern === "") throw new Error("empty pattern");
    const elems = pattern.split("/");
    if (elems.length > 2) throw new Error("too many slashes in pattern");
    const [cluster, node] = elems.length === 2 ? elems : ["", elems[0]];
    const c = cluster ? fqdnPatternSource(cluster) : FQDN_RE;
    const n = node ? fqdnPatternSource(node) : FQDN_RE;
    return `${c}/${n}`;
  });
  return new RegExp(`^(?:${parts.join("|")})$`);
}
