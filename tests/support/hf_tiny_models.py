"""Tiny randomly initialised Hugging Face models and a tiny tokenizer, built locally (no Hub).

Each `TinyModel` names an architecture, how to build it, and what kind of inputs it takes:
"encoder" (bidirectional, right padding), "decoder" (causal LM, left padding) or "seq2seq".
Sizes stay small (hidden 32, 2 layers, vocab 100, at most 16 tokens) so Triton's interpreter is fast.
"""
from dataclasses import dataclass
from typing import Callable

import torch
import transformers as tf

VOCAB = 100
PAD, BOS, EOS = 0, 1, 2


@dataclass(frozen=True)
class TinyModel:
    name: str
    kind: str  # "encoder", "decoder" or "seq2seq"
    make_config: Callable[[], tf.PretrainedConfig]
    model_class: type

    def build(self, attn_implementation: str = "sdpa", seed: int = 0) -> torch.nn.Module:
        torch.manual_seed(seed)
        config = self.make_config()
        config._attn_implementation = attn_implementation
        return self.model_class(config).eval()


_llama_like = dict(
    vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
)  # GQA: 4 query heads share 2 key/value heads

TINY_MODELS = {
    model.name: model for model in (
        TinyModel("bert", "encoder", lambda: tf.BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
            max_position_embeddings=64, pad_token_id=PAD), tf.BertModel),
        TinyModel("distilbert", "encoder", lambda: tf.DistilBertConfig(
            vocab_size=VOCAB, dim=32, n_layers=2, n_heads=2, hidden_dim=64, max_position_embeddings=64,
            pad_token_id=PAD), tf.DistilBertModel),
        TinyModel("roberta", "encoder", lambda: tf.RobertaConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=64, pad_token_id=PAD), tf.RobertaModel),
        TinyModel("gpt2", "decoder", lambda: tf.GPT2Config(
            vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=2, pad_token_id=PAD,
            bos_token_id=BOS, eos_token_id=EOS), tf.GPT2LMHeadModel),
        TinyModel("llama", "decoder", lambda: tf.LlamaConfig(**_llama_like), tf.LlamaForCausalLM),
        TinyModel("qwen2", "decoder", lambda: tf.Qwen2Config(**_llama_like), tf.Qwen2ForCausalLM),
        TinyModel("bart", "seq2seq", lambda: tf.BartConfig(
            vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
            decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64,
            pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS, decoder_start_token_id=EOS,
            forced_eos_token_id=None), tf.BartForConditionalGeneration),
        TinyModel("t5", "seq2seq", lambda: tf.T5Config(
            vocab_size=VOCAB, d_model=32, d_kv=16, d_ff=64, num_layers=2, num_decoder_layers=2, num_heads=2,
            relative_attention_num_buckets=8, relative_attention_max_distance=16, pad_token_id=PAD,
            eos_token_id=EOS, decoder_start_token_id=PAD), tf.T5ForConditionalGeneration),
    )
}

DECODERS = [name for name, model in TINY_MODELS.items() if model.kind in ("decoder", "seq2seq")]


def model_inputs(kind: str, padded: bool, batch: int = 2, length: int = 12) -> dict:
    """Random token ids (never the special ones) for a model kind; with `padded`, the first sequence
    is shorter: padded on the left for a decoder-only model (as for generation), else on the right."""
    input_ids = torch.randint(3, VOCAB, (batch, length))
    inputs = {"input_ids": input_ids}
    if padded:
        attention_mask = torch.ones_like(input_ids)
        if kind == "decoder":
            attention_mask[0, :4] = 0
        else:
            attention_mask[0, -4:] = 0
        inputs["input_ids"] = input_ids.masked_fill(attention_mask == 0, PAD)
        inputs["attention_mask"] = attention_mask
    if kind == "seq2seq":
        inputs["decoder_input_ids"] = torch.randint(3, VOCAB, (batch, 6))
    return inputs


SENTENCES = [
    "the kernel reads the keys once",
    "a fused kernel keeps the scores on chip",
    "the model attends to every earlier token",
    "padding tokens are never attended",
]


def tiny_tokenizer() -> tf.PreTrainedTokenizerFast:
    """A word-level tokenizer trained on a few sentences, wrapped for transformers' pipelines."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    specials = ["<pad>", "<s>", "</s>", "<unk>"]  # ids 0..3: PAD, BOS, EOS as in the configs above
    tokenizer.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=specials))
    return tf.PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
