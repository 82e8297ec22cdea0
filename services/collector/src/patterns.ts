/**
 * Shell-style globs for `--interfaces` entries: `*` (any run of characters), `?` (one
 * character), `[abc]`, `[a-z]`, `[!a-z]` / `[^a-z]`. Everything else matches itself.
 */

/** A glob that cannot be compiled (unterminated or empty `[...]`). */
export class GlobError extends Error {
  override name = "GlobError";
}

/** True when `s` contains glob syntax (`*`, `?` or `[`). */
export function isGlob(s: string): boolean {
  return /[*?[]/.test(s);
}

function escapeRegExp(c: string): string {
  return /[\\^$.*+?()[\]{}|]/.test(c) ? `\\${c}` : c;
}

/** Compiles a glob to an anchored RegExp; throws GlobError for malformed brackets. */
export function compileGlob(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const close = glob.indexOf("]", i + 2);
      if (close === -1) throw new GlobError(`unterminated "[" in "${glob}"`);
      let body = glob.slice(i + 1, close);
      let negate = false;
      if (body.startsWith("!") || body.startsWith("^")) {
        negate = true;
        body = body.slice(1);
      }
      if (body === "") throw new GlobError(`empty "[]" in "${glob}"`);
      // Keep ranges (a-z); escape everything else that is special inside a class.
      const cls = [...body].map((ch) => (ch === "-" ? "-" : /[\\\]^[]/.test(ch) ? `\\${ch}` : ch));
      re += `[${negate ? "^" : ""}${cls.join("")}]`;
      i = close;
    } else re += escapeRegExp(c);
  }
  try {
    return new RegExp(`^${re}$`, "u");
  } catch (cause) {
    throw new GlobError(`"${glob}" is not a valid pattern`, { cause });
  }
}

/** One `--interfaces` entry: device name (or glob) inside a netns name (or glob), or the own netns. */
export interface InterfacePattern {
  readonly ifname: string;
  /** Name or glob of netns under /run/netns; undefined means the collector's own namespace. */
  readonly netns?: string;
}

/** A pattern ready to match names. */
export interface CompiledPattern {
  readonly source: InterfacePattern;
  /** `[<netns>/]<ifname>` as configured. */
  readonly text: string;
  /** Matches device names; loopback devices only match a literal name. */
  matchIfname(name: string, loopback: boolean): boolean;
  /** Matches /run/netns names (never called for own-namespace patterns). */
  matchNetns(name: string): boolean;
  /** True when `ifname` is a glob. */
  readonly ifnameGlob: boolean;
  /** True when `netns` is a glob. */
  readonly netnsGlob: boolean;
}

/** Compiles one pattern; throws GlobError. */
export function compilePattern(p: InterfacePattern): CompiledPattern {
  const ifnameGlob = isGlob(p.ifname);
  const netnsGlob = p.netns !== undefined && isGlob(p.netns);
  const ifRe = ifnameGlob ? compileGlob(p.ifname) : undefined;
  const nsRe = netnsGlob && p.netns !== undefined ? compileGlob(p.netns) : undefined;
  return {
    source: p,
    text: p.netns === undefined ? p.ifname : `${p.netns}/${p.ifname}`,
    ifnameGlob,
    netnsGlob,
    matchIfname: (name, loopback) =>
      ifRe === undefined ? name === p.ifname : !loopback && ifRe.test(name),
    matchNetns: (name) => (nsRe === undefined ? name === p.netns : nsRe.test(name)),
  };
}
