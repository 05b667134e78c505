"""The course's four tasks, and feature extraction (the real-weights check): how each one predicts
(transformers' `pipeline()` where the installed version has the task, else our own code), the logits it
compares, and its rule for "the same prediction".

Each task gives, for a model and its tokenizer:
- `predictor(...)`: a function from the examples to one JSON-able record per example (timed);
- `logits(...)`: the model's logits (hidden states for feature extraction) over the real (unpadded)
  positions of one forward on the padded batch, teacher-forced on the reference variant's output for
  generation (so every variant gets the same input), flattened: the "max |logit difference|" column;
- `mismatches(expected, actual)`: every difference the task's rule does not allow.
"""
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch

from benchmarks.pipelines.extractive_qa import MAX_ANSWER_TOKENS, answer_spans, pair_batch
from benchmarks.pipelines.summarize import article_batch, summaries, summary_record, without_trailing_padding

# Labels' and answers' scores are probabilities computed in float32 from logits in the model's dtype, and
# embeddings are means of layer-normalised states: all of order 1. Two correct attention implementations
# move them by a few roundings; the bounds are about 10x what the tiny models and MiniLM show in float32
# and a few units of the dtype's epsilon otherwise.
SCORE_TOLERANCES = {torch.float32: 1e-5, torch.float16: 5e-3, torch.bfloat16: 3e-2}

Predictor = Callable[[list], list[dict]]


@dataclass(frozen=True)
class RunSettings:
    device: torch.device
    dtype: torch.dtype
    max_new_tokens: int
    max_length: int  # inputs are truncated to this many tokens

    @property
    def score_tolerance(self) -> float:
        return SCORE_TOLERANCES[self.dtype]


def pipeline_available(task: str) -> bool:
    from transformers.pipelines import get_supported_tasks

    return task in get_supported_tasks()


def _pipeline(task: str, model, tokenizer):
    from transformers import pipeline

    return pipeline(task, model=model, tokenizer=tokenizer, device=model.device)


@dataclass(frozen=True)
class Mismatch:
    example: int  # index into the task's examples
    what: str

    def __str__(self) -> str:
        return f"example {self.example}: {self.what}"


def _score_mismatch(i: int, what: str, expected: float, actual: float, tolerance: float) -> list[Mismatch]:
    difference = abs(expected - actual)
    if difference <= tolerance:
        return []
    return [Mismatch(i, f"{what} score {actual:.6g} vs {expected:.6g} (|difference| {difference:.2g} > {tolerance:g})")]


def _different(i: int, what: str, expected, actual) -> list[Mismatch]:
    if expected == actual:
        return []
    if isinstance(expected, list) and isinstance(actual, list):
        first = next((j for j, pair in enumerate(zip(expected, actual)) if pair[0] != pair[1]),
                     min(len(expected), len(actual)))
        return [Mismatch(i, f"{what} differ from position {first} on: {actual[first:]} vs {expected[first:]}")]
    return [Mismatch(i, f"{what} {actual!r} vs {expected!r}")]


class Task(ABC):
    name: str
    auto_class: str  # the transformers Auto class that loads a model for this task
    padding_side = "right"
    generates = False  # counts tokens per second

    @property
    def uses_pipeline(self) -> bool:
        return pipeline_available(self.name)

    def implementation(self) -> str:
        return f"pipeline({self.name!r})"

    @abstractmethod
    def rule(self, settings: RunSettings) -> str: ...

    @abstractmethod
    def predictor(self, model, tokenizer, settings: RunSettings) -> Predictor: ...

    @abstractmethod
    def logits(self, model, tokenizer, examples: list, reference: list[dict], settings: RunSettings) -> torch.Tensor:
        ...

    @abstractmethod
    def mismatches(self, expected: list[dict], actual: list[dict], settings: RunSettings) -> list[Mismatch]: ...

    def generated_tokens(self, predictions: list[dict]) -> int | None:
        return None


class TextClassification(Task):
    name = "text-classification"
    auto_class = "AutoModelForSequenceClassification"

    def rule(self, settings):
        return f"same label; |score difference| <= {settings.score_tolerance:g}"

    def predictor(self, model, tokenizer, settings):
        classify = _pipeline(self.name, model, tokenizer)

        def predict(texts):
            results = classify(texts, batch_size=len(texts), truncation=True, max_length=settings.max_length)
            return [{"label": r["label"], "score": float(r["score"])} for r in results]
        return predict

    def logits(self, model, tokenizer, examples, reference, settings):
        batch = tokenizer(examples, padding=True, truncation=True, max_length=settings.max_length,
                          return_tensors="pt").to(model.device)
        with torch.no_grad():
            return model(**batch).logits.float().flatten()

    def mismatches(self, expected, actual, settings):
        return [problem for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for problem in (_different(i, "label", e["label"], a["label"])
                                + _score_mismatch(i, "label", e["score"], a["score"], settings.score_tolerance))]


def continuation(sequence: list[int], prompt_ids: list[int], pad_token_id: int | None) -> list[int]:
    """The tokens generated in one row: after its left padding and its prompt, before trailing padding."""
    start = 0
    while sequence[start:start + len(prompt_ids)] != prompt_ids and start < len(sequence) and \
            sequence[start] == pad_token_id:
        start += 1
    if sequence[start:start + len(prompt_ids)] != prompt_ids:
        raise RuntimeError("a generated sequence does not start with its (left-padded) prompt")
    return without_trailing_padding(sequence[start + len(prompt_ids):], pad_token_id)


class TextGeneration(Task):
    name = "text-generation"
    auto_class = "AutoModelForCausalLM"
    padding_side = "left"
    generates = True

    def rule(self, settings):
        return f"identical token ids, greedy decoding of {settings.max_new_tokens} new tokens"

    def predictor(self, model, tokenizer, settings):
        generate = _pipeline(self.name, model, tokenizer)

        def predict(prompts):
            results = generate(prompts, batch_size=len(prompts), return_tensors=True, do_sample=False, num_beams=1,
                               max_new_tokens=settings.max_new_tokens)
            records = []
            for prompt, (result,) in zip(prompts, results, strict=True):
                new_ids = continuation(list(result["generated_token_ids"]), tokenizer(prompt)["input_ids"],
                                       tokenizer.pad_token_id)
                records.append({"new_token_ids": new_ids, "text": tokenizer.decode(new_ids, skip_special_tokens=True)})
            return records
        return predict

    def logits(self, model, tokenizer, examples, reference, settings):
        rows = [tokenizer(prompt)["input_ids"] + record["new_token_ids"]
                for prompt, record in zip(examples, reference, strict=True)]
        width = max(len(row) for row in rows)
        input_ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(row)) + row for row in rows])
        attention_mask = torch.tensor([[0] * (width - len(row)) + [1] * len(row) for row in rows])
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device)).logits
        return logits[attention_mask.to(model.device).bool()].float().flatten()

    def mismatches(self, expected, actual, settings):
        return [problem for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for problem in _different(i, "generated token ids", e["new_token_ids"], a["new_token_ids"])]

    def generated_tokens(self, predictions):
        return sum(len(record["new_token_ids"]) for record in predictions)


class Summarization(Task):
    name = "summarization"
    auto_class = "AutoModelForSeq2SeqLM"
    generates = True

    def implementation(self):
        if self.uses_pipeline:
            return super().implementation()
        return ("our own code (the installed transformers has no 'summarization' pipeline): the model's "
                "generate() on the padded batch, greedy, decoded")

    def rule(self, settings):
        return f"identical summaries (text and token ids), greedy decoding of up to {settings.max_new_tokens} tokens"

    def predictor(self, model, tokenizer, settings):
        if not self.uses_pipeline:
            return lambda articles: summaries(model, tokenizer, articles, settings.max_new_tokens, settings.max_length)
        summarize = _pipeline(self.name, model, tokenizer)

        def predict(articles):
            results = summarize(articles, batch_size=len(articles), return_tensors=True, do_sample=False,
                                num_beams=1, max_new_tokens=settings.max_new_tokens, truncation=True)
            return [summary_record(tokenizer, [int(t) for t in r["summary_token_ids"]]) for r in results]
        return predict

    def logits(self, model, tokenizer, examples, reference, settings):
        batch = article_batch(tokenizer, examples, settings.max_length, model.device)
        rows = [record["token_ids"] for record in reference]
        width = max(len(row) for row in rows)
        decoder_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in rows])
        decoder_mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in rows], device=model.device)
        with torch.no_grad():
            logits = model(**batch, decoder_input_ids=decoder_ids.to(model.device),
                           decoder_attention_mask=decoder_mask).logits
        return logits[decoder_mask.bool()].float().flatten()

    def mismatches(self, expected, actual, settings):
        return [problem for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for problem in (_different(i, "summary", e["summary"], a["summary"])
                                + _different(i, "summary token ids", e["token_ids"], a["token_ids"]))]

    def generated_tokens(self, predictions):
        return sum(len(record["token_ids"]) - 1 for record in predictions)  # the decoder's start token is given


class QuestionAnswering(Task):
    name = "question-answering"
    auto_class = "AutoModelForQuestionAnswering"

    def implementation(self):
        if self.uses_pipeline:
            return super().implementation()
        return ("our own code (the installed transformers has no 'question-answering' pipeline): start/end "
                "logits of the padded (question, context) batch, best span in the context")

    def rule(self, settings):
        return f"identical answer spans (start, end, text); |score difference| <= {settings.score_tolerance:g}"

    def predictor(self, model, tokenizer, settings):
        if not self.uses_pipeline:
            return lambda pairs: answer_spans(model, tokenizer, pairs, settings.max_length)
        answer = _pipeline(self.name, model, tokenizer)

        def predict(pairs):
            questions, contexts = (list(part) for part in zip(*pairs))
            results = answer(question=questions, context=contexts, batch_size=len(pairs),
                             max_answer_len=MAX_ANSWER_TOKENS, max_seq_len=settings.max_length)
            results = results if isinstance(results, list) else [results]
            return [{"answer": r["answer"], "start": int(r["start"]), "end": int(r["end"]), "score": float(r["score"])}
                    for r in results]
        return predict

    def logits(self, model, tokenizer, examples, reference, settings):
        batch = pair_batch(tokenizer, examples, settings.max_length, model.device)
        batch.pop("offset_mapping")
        with torch.no_grad():
            output = model(**batch)
        real = batch["attention_mask"].bool()
        return torch.cat([output.start_logits[real], output.end_logits[real]]).float()

    def mismatches(self, expected, actual, settings):
        def span(record):
            return record["start"], record["end"], record["answer"]
        return [problem for i, (e, a) in enumerate(zip(expected, actual, strict=True))
                for problem in (_different(i, "answer span", span(e), span(a))
                                + _score_mismatch(i, "answer", e["score"], a["score"], settings.score_tolerance))]


class FeatureExtraction(Task):
    """Sentence embeddings (mean of the last hidden states over the real tokens): the real-weights check
    with all-MiniLM-L6-v2 when its package is installed."""
    name = "feature-extraction"
    auto_class = "AutoModel"

    def rule(self, settings):
        return f"mean-pooled embeddings within max |difference| {settings.score_tolerance:g}"

    def predictor(self, model, tokenizer, settings):
        extract = _pipeline(self.name, model, tokenizer)
        tokenize = {"truncation": True, "max_length": settings.max_length}

        def predict(texts):
            states = extract(texts, batch_size=len(texts), return_tensors=True, tokenize_kwargs=tokenize)
            lengths = [len(tokenizer(text, **tokenize)["input_ids"]) for text in texts]  # right padding
            return [{"embedding": state[0, :length].float().mean(0).tolist()}
                    for state, length in zip(states, lengths, strict=True)]
        return predict

    def logits(self, model, tokenizer, examples, reference, settings):
        batch = tokenizer(examples, padding=True, truncation=True, max_length=settings.max_length,
                          return_tensors="pt").to(model.device)
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        return hidden[batch["attention_mask"].bool()].float().flatten()

    def mismatches(self, expected, actual, settings):
        problems = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            difference = (torch.tensor(e["embedding"]) - torch.tensor(a["embedding"])).abs().max().item()
            if difference > settings.score_tolerance:
                problems.append(Mismatch(i, f"embedding max |difference| {difference:.2g} "
                                            f"> {settings.score_tolerance:g}"))
        return problems


FOUR_TASKS = (TextClassification(), TextGeneration(), Summarization(), QuestionAnswering())
TASKS = {task.name: task for task in (*FOUR_TASKS, FeatureExtraction())}
