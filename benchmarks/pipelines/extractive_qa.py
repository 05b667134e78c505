"""Extractive question answering in our own code (transformers 5 has no "question-answering" pipeline):
one forward of a span-prediction model over the padded (question, context) batch, then the best
(start, end) token pair inside the context, mapped back to characters with the tokenizer's offsets.

A span's score is P(start) x P(end), each a softmax over the context tokens only, so that the question,
the special tokens and the padding take no probability; the best span maximises it among spans with
start <= end and at most `max_answer_tokens` tokens.
"""
import torch

MAX_ANSWER_TOKENS = 15


def pair_batch(tokenizer, pairs: list[tuple[str, str]], max_length: int, device: torch.device):
    """The tokenized (question, context) batch, right-padded, contexts truncated to fit `max_length`."""
    questions, contexts = zip(*pairs)
    return tokenizer(list(questions), list(contexts), padding=True, truncation="only_second", max_length=max_length,
                     return_offsets_mapping=True, return_tensors="pt").to(device)


def best_span(start_logits: torch.Tensor, end_logits: torch.Tensor, in_context: torch.Tensor,
              max_answer_tokens: int = MAX_ANSWER_TOKENS) -> tuple[int, int, float]:
    """(start token, end token, score) for one example; logits (N,), in_context (N,) bool."""
    if not in_context.any():
        raise ValueError("the context is empty after truncation: raise max_length or shorten the question")
    hidden = torch.tensor(float("-inf"), device=start_logits.device)
    start_p = torch.where(in_context, start_logits.float(), hidden).softmax(-1)
    end_p = torch.where(in_context, end_logits.float(), hidden).softmax(-1)
    scores = start_p[:, None] * end_p[None, :]  # (start, end)
    n = scores.size(0)
    allowed = torch.ones(n, n, dtype=torch.bool, device=scores.device).triu().tril(max_answer_tokens - 1)
    scores = scores.masked_fill(~allowed, -1.0)
    best = int(scores.argmax())
    start, end = divmod(best, n)
    return start, end, float(scores[start, end])


def answer_spans(model, tokenizer, pairs: list[tuple[str, str]], max_length: int) -> list[dict]:
    """{"answer", "start", "end" (characters in the context), "score"} per (question, context) pair."""
    batch = pair_batch(tokenizer, pairs, max_length, model.device)
    offsets = batch.pop("offset_mapping")
    with torch.no_grad():
        output = model(**batch)
    answers = []
    for row, (_, context) in enumerate(pairs):
        in_context = torch.tensor([part == 1 for part in batch.sequence_ids(row)], device=model.device)
        start, end, score = best_span(output.start_logits[row], output.end_logits[row], in_context)
        first_char, last_char = int(offsets[row, start, 0]), int(offsets[row, end, 1])
        answers.append({"answer": context[first_char:last_char], "start": first_char, "end": last_char,
                        "score": score})
    return answers
