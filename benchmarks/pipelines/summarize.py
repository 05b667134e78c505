"""Summarization in our own code (transformers 5 has no "summarization" pipeline): the encoder-decoder's
`generate` on the right-padded batch of articles, greedy (one beam, no sampling, whatever the model's
generation config says), and the decoded summaries."""
import torch


def article_batch(tokenizer, articles: list[str], max_length: int, device: torch.device) -> dict:
    batch = tokenizer(articles, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return {"input_ids": batch["input_ids"].to(device), "attention_mask": batch["attention_mask"].to(device)}


def without_trailing_padding(token_ids: list[int], pad_token_id: int | None) -> list[int]:
    end = len(token_ids)
    while end and token_ids[end - 1] == pad_token_id:
        end -= 1
    return token_ids[:end]


def summary_record(tokenizer, token_ids: list[int]) -> dict:
    token_ids = without_trailing_padding(token_ids, tokenizer.pad_token_id)
    return {"summary": tokenizer.decode(token_ids, skip_special_tokens=True), "token_ids": token_ids}


def summaries(model, tokenizer, articles: list[str], max_new_tokens: int, max_length: int) -> list[dict]:
    """{"summary": text, "token_ids": the decoder's tokens, start token included} per article."""
    batch = article_batch(tokenizer, articles, max_length, model.device)
    with torch.no_grad():
        sequences = model.generate(**batch, do_sample=False, num_beams=1, max_new_tokens=max_new_tokens)
    return [summary_record(tokenizer, row) for row in sequences.tolist()]
