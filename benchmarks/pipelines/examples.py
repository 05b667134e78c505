"""The inputs of each task: short hand-written examples, lengthened for the "base" size with corpus
lines put before them (a different number per example, so that a batch is heavily padded)."""
from benchmarks.pipelines.sizes import ModelSize
from benchmarks.pipelines.tokenizer_training import corpus_lines

REVIEWS = (
    "I loved this film; the acting was warm and the ending made me smile.",
    "The battery died after two hours.",
    "The staff were kind and the food arrived hot, so we will certainly come back.",
    "The printer jams on every third page and the ink is far too expensive.",
)
PROMPTS = (
    "The village holds a market every",
    "Bees carry pollen from flower to flower, and without them",
    "The storm knocked down",
)
ARTICLES = (
    "The storm knocked down power lines, and the town was dark for two days. After the flood, the neighbours "
    "worked together to repair the school and the clinic.",
    "Maria founded the bakery in 1998, and today it employs twelve people.",
    "Scientists measured the glacier every year and found that it had shrunk by a third since 1980. Rain is "
    "expected in the north tomorrow, with clear skies returning on Sunday.",
)
QUESTIONS_AND_CONTEXTS = (
    ("Who founded the bakery?", "Maria founded the bakery in 1998, and today it employs twelve people."),
    ("Where does the ferry leave from?",
     "The ferry to the island leaves every two hours from the harbour near the fish market."),
    ("When did Tom move to Lisbon?", "Tom moved to Lisbon in 2015 to study music, and he now teaches piano there."),
)

# The share of `context_sentences` put before example i (cycled): long, short and middling rows.
_CONTEXT_SHARES = (1.0, 0.1, 0.6, 0.0, 0.85, 0.3, 0.45, 0.2)


def _lengthened(texts: tuple, size: ModelSize) -> list:
    """`size.batch` examples (texts cycled), each after its share of corpus lines."""
    lines = corpus_lines()
    examples = []
    for i in range(size.batch if size.context_sentences else len(texts)):
        count = round(size.context_sentences * _CONTEXT_SHARES[i % len(_CONTEXT_SHARES)])
        context = " ".join(lines[(i * 7 + j) % len(lines)] for j in range(count))
        examples.append((context, texts[i % len(texts)]))
    return examples


def task_examples(task: str, size: ModelSize) -> list:
    """Texts (str) for every task but QA, which takes (question, context) pairs."""
    if task == "question-answering":
        return [(question, f"{context} {passage}".strip())
                for context, (question, passage) in _lengthened(QUESTIONS_AND_CONTEXTS, size)]
    texts = {"text-classification": REVIEWS, "text-generation": PROMPTS, "summarization": ARTICLES,
             "feature-extraction": REVIEWS}
    if task not in texts:
        raise ValueError(f"task must be one of {sorted([*texts, 'question-answering'])}, got {task!r}")
    return [f"{context} {text}".strip() for context, text in _lengthened(texts[task], size)]
