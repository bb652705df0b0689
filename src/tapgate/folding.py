"""Case folding for policy values and login names, correct for both Turkish and English data.

Python's `str.casefold` follows the Unicode default folding, which is wrong for Turkish in
two ways. `"İ".casefold()` is `"i̇"` (i followed by U+0307 COMBINING DOT ABOVE), so `BİLGİ`
does not equal `bilgi`. And `ı` (dotless i) folds to itself, so `YILMAZ` with an ASCII `I`
does not equal `yılmaz`. Unicode's Turkic folding (the `T` entries of CaseFolding.txt) fixes
Turkish but breaks English, because it folds `I` to `ı`, so `IT` no longer equals `it`.

A directory can hold both languages in one attribute, and a policy value cannot say which
language it is in. `fold` therefore maps all four letters `I`, `i`, `İ` and `ı` to ASCII `i`.
The cost is that two words that differ only in the dot on an i compare equal (Turkish `sınır`
"border" and `sinir` "nerve"). For attribute matching that is the safer error: the
alternative makes `Bilgi İşlem` and `BİLGİ İŞLEM` different departments.
"""

from __future__ import annotations

import unicodedata

__all__ = ["fold"]

_COMBINING_DOT_ABOVE = "\u0307"

# Applied before `casefold`, so none of these letters reaches the default folding.
_TURKISH_I = str.maketrans({"I": "i", "İ": "i", "ı": "i"})


def fold(text: str) -> str:
    """Return the comparison form of `text`; two strings match case-insensitively when their
    folded forms are equal.

    The text is normalized to NFC first, so precomposed and decomposed input agree. Then the
    four Turkish and English i letters become `i`, and Unicode full case folding applies
    (`ß` becomes `ss`). A combining dot above after an `i` is dropped, because some software
    lower-cases `İ` that way. The result is normalized to NFC again, because case folding can
    return decomposed sequences.
    """
    text = unicodedata.normalize("NFC", text)
    text = text.translate(_TURKISH_I).casefold()

    # The dotted and dotless forms must end up as the same plain `i`.
    while "i" + _COMBINING_DOT_ABOVE in text:
        text = text.replace("i" + _COMBINING_DOT_ABOVE, "i")

    return unicodedata.normalize("NFC", text)
