import { describe, expect, it } from "vitest";
import { maskNumber } from "./mask";

describe("maskNumber", () => {
  it.each([
    ["+33612345678", "+•••••••5678"],
    ["06 12 34 56 78", "•• •• •• 56 78"],
    ["0612345678", "••••••5678"],
    ["sip:+33612345678@sbc.example", "+•••••••5678"],
    ["tel:+33612345678;ext=1", "+•••••••5678"],
    ["1001", "1001"],
    ["12", "12"],
    ["", ""],
    ["•••••••5678", "•••••••5678"],
    ["******5678", "******5678"],
    ["jean.dupont", "••••.••••••"],
    ["agent0612345678", "•••••••••••5678"],
  ])("%s -> %s", (input, expected) => {
    expect(maskNumber(input)).toBe(expected);
  });

  it("never shows more than 4 digits", () => {
    for (const input of ["+44 20 7946 0958", "0033612345678", "(555) 010-9999 x123"]) {
      const digits = maskNumber(input).replace(/[^0-9]/g, "");
      expect(digits.length).toBe(4);
      expect(input.replace(/[^0-9]/g, "").endsWith(digits)).toBe(true);
    }
  });
});
