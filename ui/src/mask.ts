// Phone numbers shown in the history: Rust masks them already; this is a second line of defence.

const MASK = "•";
const VISIBLE_DIGITS = 4;

/**
 * Keeps only the last 4 digits: every other digit or letter becomes `•`; separators (`+`,
 * spaces, dashes, dots, brackets) and characters already masked stay. A SIP URI is reduced to
 * its user part first (the host is dropped).
 */
export function maskNumber(value: string): string {
  const user = value.replace(/^(sips?|tel):/i, "").replace(/[@;?].*$/, "");
  let digitsToKeep = VISIBLE_DIGITS;
  const chars = Array.from(user);
  for (let i = chars.length - 1; i >= 0; i--) {
    const char = chars[i]!;
    if (/[0-9]/.test(char) && digitsToKeep > 0) {
      digitsToKeep--;
    } else if (/[\p{L}\p{N}]/u.test(char)) {
      chars[i] = MASK;
    }
  }
  return chars.join("");
}
