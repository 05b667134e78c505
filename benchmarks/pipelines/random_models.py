"""Randomly initialised models for the tasks, with tokenizers trained on the shipped corpus: nothing is
downloaded. A BERT classifier (two labels, NEGATIVE / POSITIVE), a GPT-2 language model, a BART
encoder-decoder, a BERT extractive question-answering model and a bare BERT encoder (feature
extraction, when MiniLM's package is not installed), at a size from `sizes.py`."""
from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers as tf

from benchmarks.pipelines.sizes import ModelSize
from benchmarks.pipelines.tokenizer_training import byte_bpe_tokenizer, bert_tokenizer

SENTIMENT_LABELS = {0: "NEGATIVE", 1: "POSITIVE"}


def _bert(size: ModelSize, tokenizer, **extra) -> tf.BertConfig:
    return tf.BertConfig(
        vocab_size=len(tokenizer), hidden_size=size.hidden, num_hidden_layers=size.layers,
        num_attention_heads=size.heads, intermediate_size=size.ffn, max_position_embeddings=size.max_positions,
        initializer_range=size.init_std, pad_token_id=tokenizer.pad_token_id, **extra,
    )


def _gpt2(size: ModelSize, tokenizer) -> tf.GPT2Config:
    return tf.GPT2Config(
        vocab_size=len(tokenizer), n_positions=size.max_positions, n_embd=size.hidden, n_layer=size.layers,
        n_head=size.heads, n_inner=size.ffn, initializer_range=size.init_std, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
    )


def _bart(size: ModelSize, tokenizer) -> tf.BartConfig:
    return tf.BartConfig(
        vocab_size=len(tokenizer), d_model=size.hidden, encoder_layers=size.seq2seq_layers,
        decoder_layers=size.seq2seq_layers, encoder_attention_heads=size.heads, decoder_attention_heads=size.heads,
        encoder_ffn_dim=size.ffn, decoder_ffn_dim=size.ffn, max_position_embeddings=size.max_positions,
        init_std=size.init_std, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_bos_token_id=None, forced_eos_token_id=None,
    )


@dataclass(frozen=True)
class RandomModelRecipe:
    architecture: str
    make_tokenizer: Callable[[], tf.PreTrainedTokenizerFast]
    make_config: Callable[[ModelSize, tf.PreTrainedTokenizerFast], tf.PretrainedConfig]
    model_class: type


RECIPES = {
    "text-classification": RandomModelRecipe(
        "BERT", bert_tokenizer,
        lambda size, tokenizer: _bert(size, tokenizer, id2label=SENTIMENT_LABELS,
                                      label2id={label: i for i, label in SENTIMENT_LABELS.items()}),
        tf.BertForSequenceClassification),
    "text-generation": RandomModelRecipe(
        "GPT-2", lambda: byte_bpe_tokenizer(add_bos_eos=False), _gpt2, tf.GPT2LMHeadModel),
    "summarization": RandomModelRecipe(
        "BART", lambda: byte_bpe_tokenizer(add_bos_eos=True), _bart, tf.BartForConditionalGeneration),
    "question-answering": RandomModelRecipe("BERT", bert_tokenizer, _bert, tf.BertForQuestionAnswering),
    "feature-extraction": RandomModelRecipe("BERT", bert_tokenizer, _bert, tf.BertModel),
}


def random_model(task: str, size: ModelSize, seed: int = 0) -> tuple[torch.nn.Module, tf.PreTrainedTokenizerFast]:
    """(model in eval mode with sdpa attention, its tokenizer); the same seed gives the same weights."""
    if task not in RECIPES:
        raise ValueError(f"task must be one of {sorted(RECIPES)}, got {task!r}")
    recipe = RECIPES[task]
    tokenizer = recipe.make_tokenizer()
    config = recipe.make_config(size, tokenizer)
    config._attn_implementation = "sdpa"
    torch.manual_seed(seed)
    return recipe.model_class(config).eval(), tokenizer


def describe(task: str, size: ModelSize) -> str:
    recipe = RECIPES[task]
    layers = f"{size.seq2seq_layers}+{size.seq2seq_layers}" if task == "summarization" else str(size.layers)
    return (f"random {recipe.architecture} ({size.name}: hidden {size.hidden}, {layers} layers, {size.heads} heads), "
            f"tokenizer trained on benchmarks/pipelines/corpus.txt")
