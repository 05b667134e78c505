"""The pipelines benchmark (`python -m benchmarks pipelines`, run.py): the
course's four Hugging Face tasks, and feature extraction, with eager, sdpa and our attention on the same
model objects.

- sizes.py, tokenizer_training.py (+ corpus.txt), random_models.py, examples.py: offline models and inputs
- loading.py, minilm.py: a local model directory or cached hub id; all-MiniLM-L6-v2's packaged weights
- tasks.py, summarize.py, extractive_qa.py: how each task predicts and what "the same prediction" means
- compare.py, report.py: the variants on one model, the tables
- run.py: the command
"""
