"""Words for token classification, the same on the training side and on a device (no torch).

Tagging data (CoNLL) is one word a line, punctuation split off: `Gusau`, `,`. Raw text is split the
same way by `split_words`: a run of letters, marks and digits (with `'`, `’`, `-` or `.` inside it) is
a word, and every other non-space character is a word of its own — so Devanagari vowel signs stay
inside their word and Amharic `።` stands alone. A tagger labels each word at its first sub-word token,
as the standard token-classification recipe does (`first_subwords`).
"""

from __future__ import annotations

import unicodedata

_JOINERS = "'’-."


def _in_word(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "LMN" or ch == "_"


def split_words(text: str) -> list[tuple[str, int, int]]:
    """(word, start, end) character spans of the words of `text`."""
    words, i, n = [], 0, len(text)
    while i < n:
        if text[i].isspace():
            i += 1
            continue
        start = i
        if _in_word(text[i]):
            i += 1
            while i < n and (_in_word(text[i]) or (text[i] in _JOINERS and i + 1 < n and _in_word(text[i + 1])
                                                   and _in_word(text[i - 1]))):
                i += 1
        else:
            i += 1
        words.append((text[start:i], start, i))
    return words


def first_subwords(word_ids: list[int | None], skip: int, n_words: int) -> list[int]:
    """For each of `n_words` words (after `skip` prefix words), the index of its first token; -1 where
    truncation cut the word off."""
    first = [-1] * n_words
    for position, word in enumerate(word_ids):
        if word is not None and word >= skip and first[word - skip] < 0:
            first[word - skip] = position
    return first


def bio_type(tag: str) -> tuple[str, str]:
    """('B'|'I'|'O', entity type) of an IOB2 tag."""
    if tag == "O" or len(tag) < 3 or tag[1] != "-":
        return "O", ""
    return tag[0], tag[2:]


def entities(tags) -> list[tuple[str, int, int]]:
    """(type, first word, last word + 1) of each entity in an IOB2 sequence, read as conlleval reads it:
    an entity starts at B-X, or at an I-X that does not continue an X entity (a stray I-), and goes on
    while I-X follows."""
    found, start, typ = [], None, ""
    for i, tag in enumerate([*tags, "O"]):
        kind, t = bio_type(tag)
        continues = kind == "I" and start is not None and t == typ
        if start is not None and not continues:
            found.append((typ, start, i))
            start = None
        if kind in ("B", "I") and not continues:
            start, typ = i, t
    return found


def tag_results(words: list[tuple[str, int, int]], probs, labels: list[str]) -> list[dict]:
    """Per word: its tag, the tag's probability and its character span. `probs[i]` is word i's class
    probabilities at its first sub-word, or None where truncation cut the word (tagged with the first
    label, `O` for entities, probability 0)."""
    out = []
    for (word, start, end), p in zip(words, probs):
        if p is None:
            out.append({"word": word, "tag": labels[0], "score": 0.0, "start": start, "end": end})
        else:
            best = int(max(range(len(labels)), key=lambda k: p[k]))
            out.append({"word": word, "tag": labels[best], "score": float(p[best]), "start": start, "end": end})
    return out


def entity_spans(text: str, tagged: list[dict]) -> list[dict]:
    """The entities of one tagged text: type, the text they cover, character offsets, mean tag probability."""
    spans = []
    for typ, first, last in entities([w["tag"] for w in tagged]):
        start, end = tagged[first]["start"], tagged[last - 1]["end"]
        score = sum(w["score"] for w in tagged[first:last]) / (last - first)
        spans.append({"type": typ, "text": text[start:end] if text is not None else " ".join(
            w["word"] for w in tagged[first:last]), "start": start, "end": end, "score": score})
    return spans


class WordTagging:
    """`tag`, `tag_words` and `entities` over a `_word_probs(sentences)` that a tagger provides (torch or a
    device runtime), so both tag text exactly alike. Needs `labels` and `scheme` ("bio" | "tags")."""

    labels: list[str]
    scheme: str

    def _word_probs(self, sentences: list[list[str]]) -> list[list]:
        raise NotImplementedError

    def tag_words(self, sentences: list[list[str]]) -> list[list[dict]]:
        """Tags of sentences already split into words (CoNLL data), one result per word."""
        from edgelm.errors import EdgelmError

        sentences = [list(words) for words in sentences]
        if any(not words for words in sentences):
            raise EdgelmError("a sentence with no words: give at least one word each")
        return [tag_results([(w, 0, 0) for w in words], probs, self.labels)
                for words, probs in zip(sentences, self._word_probs(sentences))]

    def tag(self, texts: list[str]) -> list[list[dict]]:
        """Per text, per word (`split_words`): tag, its probability and character offsets."""
        from edgelm.errors import EdgelmError

        texts = list(texts)
        if not texts or any(not isinstance(t, str) or not t.strip() for t in texts):
            raise EdgelmError("empty text: give at least one non-blank sentence")
        spans = [split_words(t) for t in texts]
        return [tag_results(s, p, self.labels) for s, p in zip(spans, self._word_probs([[w for w, _, _ in s]
                                                                                       for s in spans]))]

    def entities(self, texts: list[str]) -> list[list[dict]]:
        """Per text, its entities (a BIO tagger's): type, the text they cover, character offsets, score."""
        from edgelm.errors import EdgelmError

        if self.scheme != "bio":
            raise EdgelmError("this tagger's tags are not entities (BIO); use tag()")
        texts = list(texts)
        return [entity_spans(t, tagged) for t, tagged in zip(texts, self.tag(texts))]
