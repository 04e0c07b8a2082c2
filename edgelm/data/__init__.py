"""Data: where it lives, SIB-200, Tatoeba bitext and plain-text corpora."""

from edgelm.data.corpus import Corpus, read_corpus
from edgelm.data.languages import LANGUAGES, normalize_language
from edgelm.data.locate import data_root
from edgelm.data.sib200 import SibExample, load_sib200, sib200_labels, sib200_languages
from edgelm.data.tatoeba import load_tatoeba, tatoeba_languages

__all__ = [
    "LANGUAGES", "Corpus", "SibExample", "data_root", "load_sib200", "load_tatoeba",
    "normalize_language", "read_corpus", "sib200_labels", "sib200_languages", "tatoeba_languages",
]
