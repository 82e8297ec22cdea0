import { FilterError } from "./errors.ts";

/**
 * Hubble takes regular expressions in Go's RE2 syntax; JavaScript's RegExp
 * accepts more. Constructs RE2 rejects and JavaScript would silently accept
 * (backreferences, lookahead, lookbehind) fail here, so a filter means the
 * same thing to both. A leading `(?i)` (RE2's case-insensitive flag) becomes
 * the `i` flag. https://github.com/google/re2/wiki/Syntax
 */
function re2Problem(pattern: string): string | undefined {
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i];
    if (ch === "\\") {
      const next = pattern[i + 1] ?? "";
      if (/[1-9]/.test(next)) return "backreferences are not supported";
      if (next === "k" && pattern[i + 2] === "<") return "backreferences are not supported";
      i++;
    } else if (ch === "(" && pattern[i + 1] === "?") {
      const rest = pattern.slice(i + 2, i + 4);
      if (rest.startsWith("=") || rest.startsWith("!") || rest === "<=" || rest === "<!") {
        return "lookaround assertions are not supported";
      }
    }
  }
  return undefined;
}

/**
 * Compile RE2-style patterns; each is searched for anywhere in the text, as
 * Go's `regexp.MatchString` does.
 * @throws FilterError naming `field` and the pattern.
 */
export function compileRegexps(field: string, patterns: readonly string[]): RegExp[] {
  return patterns.map((pattern) => {
    const problem = re2Problem(pattern);
    if (problem) throw new FilterError(field, `${problem} in ${JSON.stringify(pattern)}`);
    const caseless = pattern.startsWith("(?i)");
    try {
      return new RegExp(caseless ? pattern.slice(4) : pattern, caseless ? "i" : "");
    } catch (err) {
      throw new FilterError(
        field,
        `invalid regular expression ${JSON.stringify(pattern)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
  });
}
