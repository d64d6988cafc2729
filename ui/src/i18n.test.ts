import { describe, expect, it } from "vitest";
import { MESSAGES, resolveLanguage, translator, type MessageKey } from "./i18n";

const placeholders = (text: string) => [...text.matchAll(/\{(\w+)\}/g)].map((m) => m[1]).sort();

describe("i18n", () => {
  it("every key exists, non-empty, in both languages, with the same placeholders", () => {
    const frKeys = Object.keys(MESSAGES.fr).sort();
    const enKeys = Object.keys(MESSAGES.en).sort();
    expect(enKeys).toEqual(frKeys);
    expect(frKeys.length).toBeGreaterThan(50);
    for (const key of frKeys as MessageKey[]) {
      expect(MESSAGES.fr[key].trim(), key).not.toBe("");
      expect(MESSAGES.en[key].trim(), key).not.toBe("");
      expect(placeholders(MESSAGES.en[key]), key).toEqual(placeholders(MESSAGES.fr[key]));
    }
  });

  it("the two languages are really translated (most strings differ)", () => {
    const keys = Object.keys(MESSAGES.fr) as MessageKey[];
    const same = keys.filter((key) => MESSAGES.fr[key] === MESSAGES.en[key]);
    expect(same.length).toBeLessThan(keys.length / 10);
  });

  it("French first: fr-* locales and no locale give fr, others en, the setting wins", () => {
    expect(resolveLanguage(null, "fr-FR", "en-US")).toBe("fr");
    expect(resolveLanguage(null, "fr_CA", null)).toBe("fr");
    expect(resolveLanguage(null, "FR", null)).toBe("fr");
    expect(resolveLanguage(null, "fr", null)).toBe("fr");
    expect(resolveLanguage(null, "en-GB", "fr-FR")).toBe("en");
    expect(resolveLanguage(null, "de-DE", null)).toBe("en");
    expect(resolveLanguage(null, "fy-NL", null)).toBe("en");
    expect(resolveLanguage(null, "", "fr-BE")).toBe("fr");
    expect(resolveLanguage(null, null, "es-ES")).toBe("en");
    expect(resolveLanguage(null, null, null)).toBe("fr");
    expect(resolveLanguage("en", "fr-FR", "fr-FR")).toBe("en");
    expect(resolveLanguage("fr", "en-US", "en-US")).toBe("fr");
  });

  it("fills placeholders and leaves unknown ones", () => {
    const t = translator("fr");
    expect(t("registration.failedReason", { reason: "403 Forbidden" })).toBe("Échec de connexion : 403 Forbidden");
    expect(translator("en")("registration.failedReason", { reason: "timeout" })).toBe("Connection failed: timeout");
    expect(t("incoming.others", {})).toBe("{count} autre(s) appel(s) en attente");
    expect(t("tabs.phone")).toBe("Téléphone");
  });
});
