/**
 * Colors and terminal escaping of the text formats, as hubble's printer does them:
 * colored hosts, ports, identities and verdicts when color is on, and every escape
 * character (other than those colors) and carriage return in printed text made visible
 * (`^[`, `\r`), so flow fields cannot drive the terminal.
 */

/** The ANSI colors hubble's printer uses. */
export type Color = "red" | "green" | "blue" | "cyan" | "magenta" | "yellow";

const CODES: Readonly<Record<Color, number>> = {
  red: 31,
  green: 32,
  blue: 34,
  cyan: 36,
  magenta: 35,
  yellow: 33,
};

/** `text` wrapped in `color` when `on`, else `text` unchanged. */
export function paint(on: boolean | undefined, color: Color, text: string): string {
  return on ? `\x1b[${CODES[color]}m${text}\x1b[0m` : text;
}

/** Escape characters that do not start one of the colors above (or their reset). */
const ESC = String.fromCharCode(0x1b);
const STRAY_ESC_COLORED = new RegExp(`${ESC}(?!\\[(?:3[1-6]|0)m)`, "g");
const ANY_ESC = new RegExp(ESC, "g");

/**
 * Makes terminal control visible like hubble's terminal escaper: ESC becomes `^[` and CR
 * becomes `\r`; with `colored`, the color sequences this module writes pass through.
 */
export function escapeTerminal(text: string, colored = false): string {
  if (!text.includes(ESC) && !text.includes("\r")) return text;
  return text.replace(colored ? STRAY_ESC_COLORED : ANY_ESC, "^[").replace(/\r/g, "\\r");
}
