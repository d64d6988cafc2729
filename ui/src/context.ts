import { createContext } from "preact";
import { useContext } from "preact/hooks";
import { translator, type Translate } from "./i18n";
import type { Language } from "./types";

export type I18nValue = { t: Translate; language: Language };

export const I18n = createContext<I18nValue>({ t: translator("fr"), language: "fr" });

export function useI18n(): I18nValue {
  return useContext(I18n);
}
