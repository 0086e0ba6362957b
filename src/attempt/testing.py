"""Tiny random backbones and word-level tokenizers built in code: no network, no downloads.

The tests, the benchmarks' ``--tiny`` runs and the quickstart checks use them to exercise every backbone family
(T5/BART, Llama/GPT-2/Qwen2, BERT/RoBERTa) in seconds. The weights are random: the results mean nothing.
"""

from __future__ import annotations

import torch

WORDS = [
    "the",
    "a",
    "an",
    "is",
    "are",
    "was",
    "not",
    "no",
    "yes",
    "and",
    "or",
    "but",
    "of",
    "to",
    "in",
    "on",
    "for",
    "with",
    "it",
    "this",
    "that",
    "he",
    "she",
    "they",
    "we",
    "you",
    "i",
    "cat",
    "dog",
    "bird",
    "man",
    "woman",
    "child",
    "house",
    "car",
    "tree",
    "book",
    "food",
    "water",
    "sun",
    "day",
    "night",
    "good",
    "bad",
    "great",
    "terrible",
    "movie",
    "film",
    "story",
    "plot",
    "actor",
    "happy",
    "sad",
    "love",
    "hate",
    "big",
    "small",
    "old",
    "new",
    "red",
    "blue",
    "green",
    "question",
    "answer",
    "sentence",
    "premise",
    "hypothesis",
    "passage",
    "true",
    "false",
    "entailment",
    "not_entailment",
    "neutral",
    "contradiction",
    "positive",
    "negative",
    "rte",
    "mnli",
    "sst2",
    "qnli",
    "cb",
    "boolq",
    "sentence1",
    "sentence2",
    ":",
    ".",
    ",",
    "?",
    "!",
    "0",
    "1",
    "2",
    "3",
    "4",
    "5",
]
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "</s>"]


def build_tokenizer(kind: str = "encoder"):
    """A word-level tokenizer: kind 'encoder' ([CLS] a [SEP] b [SEP]), 'seq2seq' (a </s>), 'causal' (no specials)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(SPECIALS + sorted(set(WORDS)))}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Whitespace()])
    if kind == "encoder":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B:1 [SEP]:1",
            special_tokens=[("[CLS]", 2), ("[SEP]", 3)],
        )
    elif kind == "seq2seq":
        tokenizer.post_processor = processors.TemplateProcessing(
            single="$A </s>", pair="$A $B </s>", special_tokens=[("</s>", 4)]
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="[PAD]",
        unk_token="[UNK]",
        eos_token="</s>",
        cls_token="[CLS]",
        sep_token="[SEP]",
        model_input_names=["input_ids", "token_type_ids", "attention_mask"]
        if kind == "encoder"
        else ["input_ids", "attention_mask"],
    )
    if kind == "causal":
        fast.padding_side = "left"
    return fast


def build_backbone(family: str, hidden_size: int = 32, arch: str | None = None, seed: int = 0):
    """A randomly initialised 2-layer backbone of the given family, sized for the tiny tokenizer.

    seq2seq: T5 (arch None) or "bart"; causal: Llama (None), "gpt2" or "qwen2"; encoder: BERT (None) or "roberta".
    """
    import transformers as tf

    vocab = len(SPECIALS) + len(set(WORDS))
    torch.manual_seed(seed)
    if family == "seq2seq" and arch == "bart":
        config = tf.BartConfig(
            vocab_size=vocab,
            d_model=hidden_size,
            encoder_layers=2,
            decoder_layers=2,
            encoder_attention_heads=4,
            decoder_attention_heads=4,
            encoder_ffn_dim=64,
            decoder_ffn_dim=64,
            max_position_embeddings=256,
            pad_token_id=0,
            bos_token_id=2,
            eos_token_id=4,
            decoder_start_token_id=4,
            forced_eos_token_id=None,
            dropout=0.0,
            attention_dropout=0.0,
            scale_embedding=True,
        )
        model = tf.BartForConditionalGeneration(config)
    elif family == "seq2seq":
        config = tf.T5Config(
            vocab_size=vocab,
            d_model=hidden_size,
            d_kv=8,
            d_ff=64,
            num_layers=2,
            num_heads=4,
            pad_token_id=0,
            eos_token_id=4,
            decoder_start_token_id=0,
            dropout_rate=0.0,
        )
        model = tf.T5ForConditionalGeneration(config)
    elif family == "causal" and arch == "gpt2":
        config = tf.GPT2Config(
            vocab_size=vocab,
            n_embd=hidden_size,
            n_layer=2,
            n_head=4,
            n_positions=256,
            bos_token_id=4,
            eos_token_id=4,
            pad_token_id=0,
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
        model = tf.GPT2LMHeadModel(config)
    elif family == "causal":  # Llama and Qwen2 take the same settings (grouped-query attention, no bos)
        config_class, model_class = (
            (tf.Qwen2Config, tf.Qwen2ForCausalLM)
            if arch == "qwen2"
            else (tf.LlamaConfig, tf.LlamaForCausalLM)
        )
        config = config_class(
            vocab_size=vocab,
            hidden_size=hidden_size,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=256,
            pad_token_id=0,
            bos_token_id=None,
            eos_token_id=4,
        )
        model = model_class(config)
    elif family == "encoder" and arch == "roberta":
        config = tf.RobertaConfig(
            vocab_size=vocab,
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=260,
            pad_token_id=0,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
            type_vocab_size=1,
        )
        model = tf.RobertaModel(config)
    elif family == "encoder":
        config = tf.BertConfig(
            vocab_size=vocab,
            hidden_size=hidden_size,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=256,
            hidden_dropout_prob=0.0,
            attention_probs_dropout_prob=0.0,
        )
        model = tf.BertModel(config)
    else:
        raise ValueError(family)
    return model.eval()
