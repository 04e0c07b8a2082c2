"""Distillation parts on their own: vocabulary trimming on real text, layer selection, the losses on
tiny models, LT-SFT selection and masking."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

from edgelm.data import load_sib200, load_tatoeba
from edgelm.distillation.losses import attention_mse, hidden_mse, logit_kd
from edgelm.distillation.lt_sft import mask_gradients, select_mask
from edgelm.distillation.student import make_student, select_layers
from edgelm.distillation.vocab import trim_vocabulary
from edgelm.errors import EdgelmError


@pytest.fixture(scope="module")
def trimmed(teacher_dir, data_dir):
    tok_json = json.loads((teacher_dir / "tokenizer.json").read_text())
    corpora = {lang: [r.text for s in ("train", "dev") for r in load_sib200(data_dir, lang, s)]
               for lang in ("eng_Latn", "swh_Latn")}
    return tok_json, corpora, trim_vocabulary(tok_json, corpora, extra_texts=["query: "])


def test_trimming_shrinks_the_vocabulary_and_keeps_specials(trimmed):
    _, _, vocab = trimmed
    assert 5_000 < vocab.size < 30_000 and vocab.stats["vocab_before"] == 250_002
    tok = vocab.tokenizer()
    for piece, old_id in (("<s>", 0), ("<pad>", 1), ("</s>", 2), ("<unk>", 3)):
        assert tok.token_to_id(piece) == old_id
    assert tok.token_to_id("<mask>") == vocab.size - 1


def test_trimmed_ids_map_back_to_the_teachers_on_the_corpus(trimmed):
    """Round trip: on the text it was built from, trimmed ids -> kept old ids == the teacher's ids."""
    from tokenizers import Tokenizer

    tok_json, corpora, vocab = trimmed
    old, new = Tokenizer.from_str(json.dumps(tok_json)), vocab.tokenizer()
    for texts in corpora.values():
        for a, b in zip(old.encode_batch(texts), new.encode_batch(texts)):
            assert vocab.kept[b.ids].tolist() == a.ids


def test_no_new_unknowns_on_unseen_text_in_both_languages(trimmed, data_dir):
    from tokenizers import Tokenizer

    tok_json, _, vocab = trimmed
    old, new = Tokenizer.from_str(json.dumps(tok_json)), vocab.tokenizer()
    texts = [r.text for lang in ("eng_Latn", "swh_Latn") for r in load_sib200(data_dir, lang, "test")]
    texts += load_tatoeba(data_dir, "swh_Latn")[0] + load_tatoeba(data_dir, "swh_Latn")[1]
    texts += ["Zebra × quartz — “quoted” 100% ½ © naïve café ß"]
    for a, b in zip(old.encode_batch(texts), new.encode_batch(texts)):
        assert b.ids.count(3) <= a.ids.count(3)
        assert new.decode(b.ids) == old.decode(a.ids)


def test_layer_selection():
    assert select_layers(12, 4) == [2, 5, 8, 11]
    assert select_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert select_layers(12, 4, "bottom") == [0, 1, 2, 3]
    assert select_layers(12, 3, "0,4,11") == [0, 4, 11]
    with pytest.raises(EdgelmError, match="more than the teacher"):
        select_layers(12, 13)
    with pytest.raises(EdgelmError, match="distinct increasing"):
        select_layers(12, 2, "5,3")


def _tiny(layers=4, seed=0, vocab=50):
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab, hidden_size=16, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=32, attn_implementation="eager")
    cfg._attn_implementation = "eager"
    return BertModel(cfg, add_pooling_layer=False).eval()


def test_student_copies_the_selected_layers_and_rows():
    teacher = _tiny()
    kept = np.array([0, 1, 2, 3, 7, 9, 49])
    student = make_student(teacher, kept, [1, 3])
    assert student.config.num_hidden_layers == 2 and student.config.vocab_size == 7
    assert student.config.hidden_dropout_prob == 0.0
    assert torch.equal(student.embeddings.word_embeddings.weight, teacher.embeddings.word_embeddings.weight[kept])
    for s_i, t_i in enumerate([1, 3]):
        for (n, a), (_, b) in zip(student.encoder.layer[s_i].named_parameters(),
                                  teacher.encoder.layer[t_i].named_parameters()):
            assert torch.equal(a, b), n


def _outputs(model, ids, mask):
    return model(input_ids=ids, attention_mask=mask, output_hidden_states=True, output_attentions=True)


def test_losses_vanish_for_a_copy_and_ignore_padding():
    teacher = _tiny()
    student = make_student(teacher, np.arange(50), [0, 1, 2, 3])
    ids = torch.randint(4, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    s, t = _outputs(student, ids, mask), _outputs(teacher, ids, mask)
    identity = [0, 1, 2, 3]
    assert hidden_mse(s.hidden_states, t.hidden_states, identity, mask) < 1e-10
    assert attention_mse(s.attentions, t.attentions, identity, mask) < 1e-12
    other = _tiny(seed=1)
    o = _outputs(other, ids, mask)
    assert hidden_mse(o.hidden_states, t.hidden_states, identity, mask) > 1e-3
    assert attention_mse(o.attentions, t.attentions, identity, mask) > 0
    # Padding positions do not count: changing what sits under the padding changes nothing.
    ids2 = ids.clone()
    ids2[1, 6:] = 5
    o2, t2 = _outputs(other, ids2, mask), _outputs(teacher, ids2, mask)
    assert torch.isclose(hidden_mse(o2.hidden_states, t2.hidden_states, identity, mask),
                         hidden_mse(o.hidden_states, t.hidden_states, identity, mask))


def test_logit_kd_by_hand():
    s = torch.tensor([[1.0, 0.0]])
    t = torch.tensor([[0.0, 2.0]])
    p = torch.softmax(t / 2, -1)
    expected = -(p * torch.log_softmax(s / 2, -1)).sum()
    assert torch.isclose(logit_kd(s, t, 2.0), expected)


def test_lt_sft_selects_k_globally_and_only_those_change():
    initial = {"a": torch.zeros(4, 3), "b": torch.zeros(5)}
    trained = {"a": torch.tensor([[0.1, 0.9, 0.0], [0.0, 0.0, 0.3], [0, 0, 0], [0, 0.5, 0]]),
               "b": torch.tensor([0.8, 0.0, 0.2, 0.0, 0.05])}
    masks = select_mask(initial, trained, 3)
    assert masks["a"].sum() + masks["b"].sum() == 3
    assert masks["a"][0, 1] and masks["a"][3, 1] and masks["b"][0]  # 0.9, 0.5, 0.8: one global threshold
    # Train a tiny model with the masks: nothing outside them may move.
    model = _tiny(layers=1)
    params = dict(model.named_parameters())
    start = {n: p.detach().clone() for n, p in params.items()}
    masks = {n: torch.rand_like(p) < 0.1 for n, p in params.items()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.0)
    for _ in range(3):
        loss = model(input_ids=torch.randint(4, 50, (2, 7))).last_hidden_state.pow(2).mean()
        opt.zero_grad()
        loss.backward()
        mask_gradients(params, masks)
        opt.step()
    moved = 0
    for n, p in params.items():
        assert torch.equal(p.detach()[~masks[n]], start[n][~masks[n]]), n
        moved += int((p.detach() != start[n]).sum())
    assert moved > 0


def test_anchor_share_fills_its_part_of_each_target_batch_and_zero_changes_nothing():
    import numpy as np

    from edgelm.distillation.batches import BalancedBatches
    from edgelm.distillation.config import DistillConfig

    sizes = {"eng_Latn": 300, "swh_Latn": 500}
    anchored = np.arange(400, 500)  # the swh sentences with a translation
    plain = BalancedBatches(sizes, 16, seed=3)
    same = BalancedBatches(sizes, 16, seed=3, subsets={"swh_Latn": anchored}, share=0.0)
    half = BalancedBatches(sizes, 16, seed=3, subsets={"swh_Latn": anchored}, share=0.5)
    for step in range(40):
        lang, idx = plain(step)
        assert same(step)[0] == lang and np.array_equal(same(step)[1], idx)
        lang_h, idx_h = half(step)
        assert lang_h == lang and len(idx_h) == 16
        if lang == "eng_Latn":
            assert np.array_equal(idx_h, idx)  # only the languages with a subset change
        else:
            assert np.isin(idx_h[:8], anchored).all()
    seen = np.concatenate([half(s)[1][:8] for s in range(1, 2 * 13, 2)])  # 13 swh batches: 104 anchored draws
    assert len(set(seen.tolist())) == 100  # one pass over the subset before any repeats
    assert "anchor_share" not in DistillConfig().identity()  # older runs still resume
    assert DistillConfig(anchor_share=0.5).identity()["anchor_share"] == 0.5


def test_source_share_gives_the_source_its_fraction_of_steps_and_the_rest_take_turns():
    from collections import Counter

    from edgelm.distillation.batches import BalancedBatches
    from edgelm.distillation.config import DistillConfig
    from edgelm.errors import EdgelmError

    sizes = {"eng_Latn": 48, "amh_Ethi": 32, "swh_Latn": 32, "zho_Hans": 32}
    turns = BalancedBatches(sizes, 8, seed=1, source="eng_Latn")  # no share: every language in turn, as before
    assert [turns(s)[0] for s in range(4)] == ["amh_Ethi", "eng_Latn", "swh_Latn", "zho_Hans"]
    half = BalancedBatches(sizes, 8, seed=1, source="eng_Latn", source_share=0.5)
    langs = [half(s)[0] for s in range(120)]
    assert Counter(langs) == {"eng_Latn": 60, "amh_Ethi": 20, "swh_Latn": 20, "zho_Hans": 20}
    assert [lang for lang in langs if lang != "eng_Latn"][:6] == ["amh_Ethi", "swh_Latn", "zho_Hans"] * 2
    def counts(steps: range) -> Counter:
        return Counter({(lang, int(i)): int(k) for lang, (idx, n) in half.draws(steps).items() for i, k in zip(idx, n)})

    draws = counts(range(120))  # each language walks its own permutations: 60 x 8 = 480 English draws
    assert sum(n for (lang, _), n in draws.items() if lang == "eng_Latn") == 480
    assert {n for (lang, _), n in draws.items() if lang == "eng_Latn"} == {10}  # whole epochs: 10 each
    assert counts(range(60)) + counts(range(60, 120)) == draws  # resumable
    assert "source_share" not in DistillConfig().identity()  # older runs still resume
    for bad in (0.0, 1.0, 1.5):
        with pytest.raises(EdgelmError, match="--source-share"):
            DistillConfig(source_share=bad)


def test_phase_two_epochs_mix_unlabelled_target_batches_and_zero_changes_nothing():
    from edgelm.distillation.task import _batches, epoch_plan

    plain = epoch_plan(100, 16, seed=0, epoch=3)
    assert [o for o, _ in plain] == ["task"] * 7
    assert all(np.array_equal(a, b) for (_, a), b in zip(plain, _batches(100, 16, 0, 3)))  # BiStil's epochs, unchanged
    mixed = epoch_plan(100, 16, seed=0, epoch=3, n_extra_rows=40, extra_batches=7)
    origins = [o for o, _ in mixed]
    assert origins.count("target") == 7 and origins != ["task"] * 7 + ["target"] * 7  # spread through the epoch
    labelled = np.concatenate([idx for o, idx in mixed if o == "task"])
    assert sorted(labelled.tolist()) == list(range(100))  # every labelled row once
    extra = np.concatenate([idx for o, idx in mixed if o == "target"])
    assert len(extra) == 112 and np.bincount(extra, minlength=40).min() >= 2  # the pool cycled, 2.8 times
    again = epoch_plan(100, 16, seed=0, epoch=3, n_extra_rows=40, extra_batches=7)
    assert all(o == p and np.array_equal(a, b) for (o, a), (p, b) in zip(mixed, again))  # resume-exact
