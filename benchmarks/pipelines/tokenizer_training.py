"""Tokenizers trained offline, in well under a second and always to the same vocabulary, on the small
English corpus shipped here (`corpus.txt`), wrapped for transformers' pipelines.

- `bert_tokenizer()`: BERT style: lower-cased, `[CLS] A [SEP]` and `[CLS] A [SEP] B [SEP]` with token
  type ids, `[PAD]` = 0 (BertConfig's default pad id).
- `byte_bpe_tokenizer(add_bos_eos)`: GPT-2 / BART style byte-level BPE, `<s>` 0, `<pad>` 1, `</s>` 2,
  `<unk>` 3 (BART's ids); `<s> A </s>` around each text when `add_bos_eos` (BART), nothing added for
  a GPT-2 style language model.
"""
from functools import cache
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = Path(__file__).with_name("corpus.txt")
VOCAB_SIZE = 1024
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
BPE_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")


@cache
def corpus_lines() -> tuple[str, ...]:
    return tuple(line.strip() for line in CORPUS.read_text(encoding="utf-8").splitlines() if line.strip())


def _alphabet(normalizer) -> list[str]:
    """Every character of the normalised corpus, in a fixed order: otherwise the trainer numbers the
    characters in hash-map order and breaks ties between equally frequent merges by those numbers, and
    the vocabulary, hence a random model's predictions, would change from run to run."""
    text = normalizer.normalize_str(" ".join(corpus_lines()))
    return sorted(set(text) - {" "})


def bert_tokenizer() -> PreTrainedTokenizerFast:
    """BERT's specials, lower-casing, pre-tokenizer and templates over a BPE vocabulary (what matters to
    the model is the ids; `tokenizers`' WordPiece trainer breaks ties differently from run to run)."""
    tokenizer = Tokenizer(models.BPE(unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(BERT_SPECIALS), show_progress=False,
                                  initial_alphabet=_alphabet(tokenizer.normalizer))
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    cls, sep = (tokenizer.token_to_id(token) for token in ("[CLS]", "[SEP]"))
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )


def byte_bpe_tokenizer(add_bos_eos: bool) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB_SIZE, special_tokens=list(BPE_SPECIALS), show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tokenizer.train_from_iterator(corpus_lines(), trainer)
    if add_bos_eos:
        bos, eos = (tokenizer.token_to_id(token) for token in ("<s>", "</s>"))
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, bos_token="<s>", pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
        model_input_names=["input_ids", "attention_mask"],
    )
