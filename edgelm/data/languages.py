"""Language codes: FLORES-200 style `xxx_Script` everywhere, with short ISO 639-3 aliases."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from edgelm.errors import EdgelmError, did_you_mean


@dataclass(frozen=True)
class Language:
    code: str  # FLORES-200: ISO 639-3 + script, e.g. swh_Latn
    name: str
    tatoeba: str | None  # the code in LASER's Tatoeba file names, when it has one


LANGUAGES: dict[str, Language] = {
    lang.code: lang
    for lang in (
        Language("eng_Latn", "English", "eng"),
        Language("swh_Latn", "Swahili", "swh"),
        Language("por_Latn", "Portuguese", "por"),
        Language("spa_Latn", "Spanish", "spa"),
        Language("fra_Latn", "French", "fra"),
        Language("deu_Latn", "German", "deu"),
        Language("hin_Deva", "Hindi", "hin"),
        Language("arb_Arab", "Arabic", "ara"),
        Language("zho_Hans", "Chinese (simplified)", "cmn"),
        Language("rus_Cyrl", "Russian", "rus"),
        Language("yor_Latn", "Yoruba", None),
        Language("hau_Latn", "Hausa", None),
        Language("amh_Ethi", "Amharic", "amh"),
        Language("tur_Latn", "Turkish", "tur"),
        Language("ind_Latn", "Indonesian", "ind"),
        Language("vie_Latn", "Vietnamese", "vie"),
        Language("jpn_Jpan", "Japanese", "jpn"),
    )
}
_ALIASES = {lang.code.split("_")[0]: lang.code for lang in LANGUAGES.values()}
_ALIASES.update({lang.tatoeba: lang.code for lang in LANGUAGES.values() if lang.tatoeba})


def normalize_language(code: str, available: list[str] | None = None) -> str:
    """Return the canonical `xxx_Script` code for `code`, or raise with close suggestions.

    `available` (e.g. the languages a data folder holds) widens what is accepted beyond the
    built-in table, so user data in other languages works too.
    """
    code = code.strip()
    known = set(LANGUAGES) | set(available or [])
    if code in known:
        return code
    if code in _ALIASES:
        return _ALIASES[code]
    for k in known:  # case-insensitive match, e.g. SWH_latn
        if k.lower() == code.lower():
            return k
    raise EdgelmError(f"unknown language code {code!r}{did_you_mean(code, sorted(known))}")


def tatoeba_code(code: str) -> str | None:
    """The Tatoeba file code of a canonical language code, if it has one."""
    lang = LANGUAGES.get(code)
    return lang.tatoeba if lang else code.split("_")[0]


def char_script(ch: str) -> str:
    """A coarse script name for one character: LATIN, ETHIOPIC, CJK, ... or COMMON for non-letters."""
    if not unicodedata.category(ch).startswith(("L", "M")):
        return "COMMON"
    name = unicodedata.name(ch, "")
    return name.split()[0] if name else "UNKNOWN"
