"""`python -m benchmarks pipelines`: the four tasks end to end on tiny random models in float32 (our
kernel in Triton's interpreter on the CPU), a broken attention caught, offline loading and its errors, and the
pieces of our own task code (continuation of a left-padded row, best answer span, tokenizers, sizes)."""
import json

import pytest
import torch

pytest.importorskip("transformers", reason="transformers is not installed (pip install -e '.[hf]')")

import kernels.hf  # noqa: E402
from benchmarks.pipelines import run as pipelines_command  # noqa: E402
from benchmarks.pipelines.examples import task_examples  # noqa: E402
from benchmarks.pipelines.extractive_qa import best_span  # noqa: E402
from benchmarks.pipelines.random_models import RECIPES, random_model  # noqa: E402
from benchmarks.pipelines.sizes import SIZES  # noqa: E402
from benchmarks.pipelines.tasks import FOUR_TASKS, TASKS, RunSettings, continuation, pipeline_available  # noqa: E402
from benchmarks.pipelines.tokenizer_training import bert_tokenizer, byte_bpe_tokenizer  # noqa: E402
from support.benchmark_runs import run_benchmarks  # noqa: E402
from support.devices import DEVICE  # noqa: E402

FOUR = [task.name for task in FOUR_TASKS]
GENERATING = {"text-generation", "summarization"}
ON_DEVICE = ["--device", DEVICE, "--dtype", "fp32"]  # the CPU runs our kernel in Triton's interpreter


def run_command(argv: list[str]) -> tuple[int, str]:
    """(exit code, screen) of `python -m benchmarks pipelines ARGV`."""
    return run_benchmarks(["pipelines", *argv])


@pytest.fixture(scope="module")
def four_tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("pipelines-out")
    tasks = [argument for name in FOUR for argument in ("--task", name)]
    exit_code, screen = run_command([*tasks, "--quick", *ON_DEVICE, "--out", str(out)])
    return exit_code, json.loads((out / "pipelines.json").read_text()), screen


def test_every_variant_predicts_the_same_on_the_four_tasks(four_tasks):
    exit_code, results, screen = four_tasks
    assert exit_code == 0 and results["benchmark"] == "pipelines"
    assert [task["task"] for task in results["tasks"]] == FOUR
    for task in results["tasks"]:
        assert task["agrees"] and task["reference"] == "sdpa" and not task["unavailable"]
        assert [v["variant"] for v in task["variants"]] == ["eager", "sdpa", "triton"]
        reference = task["variants"][1]["predictions"]
        for variant in task["variants"]:
            assert variant["agrees_with_reference"] and not variant["mismatches"], (task["task"], variant)
            assert len(variant["predictions"]) == len(task["examples"])
            assert 0 <= variant["max_logit_difference"] < 1e-4  # float32 against sdpa on the same weights
            if task["task"] in GENERATING:
                assert variant["predictions"] == reference  # token ids and text: exactly equal
    assert "outputs side by side" in screen and ("not timed" in screen) == (DEVICE == "cpu")


def test_our_kernel_ran_in_the_triton_variant_only(four_tasks):
    for task in four_tasks[1]["tasks"]:
        calls = {v["variant"]: v["triton_kernel_calls"] for v in task["variants"]}
        assert calls["eager"] == calls["sdpa"] == 0 and calls["triton"] >= 2, (task["task"], calls)


def test_timings_and_throughput(four_tasks):
    for task in four_tasks[1]["tasks"]:
        eager, sdpa, triton = task["variants"]
        timed = [eager, sdpa]
        if DEVICE == "cpu":
            assert triton["median_ms"] is None and "interpreter" in triton["timing_note"]  # not a speed
        else:
            timed.append(triton)
        assert sdpa["speedup_vs_reference"] == 1.0
        for row in timed:
            assert row["p20_ms"] <= row["median_ms"] <= row["p80_ms"]
            assert row["examples_per_s"] == pytest.approx(len(task["examples"]) / (row["median_ms"] / 1e3))
            if task["task"] in GENERATING:
                assert row["tokens_per_s"] == pytest.approx(task["generated_tokens"] / (row["median_ms"] / 1e3))
            else:
                assert row["tokens_per_s"] is None


def test_goal_rows_flatten_every_variant(four_tasks):
    """The flat rows the results report reads (benchmarks/goals.py): one per (task, variant)."""
    results = four_tasks[1]
    rows = {(row["task"], row["variant"]): row for row in results["rows"]}
    assert len(rows) == len(results["rows"]) == 3 * len(FOUR)
    for task in results["tasks"]:
        for variant in task["variants"]:
            row = rows[(task["task"], variant["variant"])]
            assert row["provider"] == ("ours" if variant["variant"] == "triton" else variant["variant"])
            assert row["available"] == (variant["median_ms"] is not None)
            assert row["agrees_with_reference"] == variant["agrees_with_reference"]
            assert row["speedup_vs_sdpa"] == variant["speedup_vs_reference"]


def test_rules_tolerances_and_implementations_are_stated(four_tasks):
    for task in four_tasks[1]["tasks"]:
        assert task["score_tolerance"] == 1e-5 and task["rule"]
        own_code = not pipeline_available(task["task"])
        assert task["implementation"].startswith("our own code") == own_code
        assert task["task"] in ("summarization", "question-answering") or not own_code


def test_predictions_have_the_shape_of_each_task(four_tasks):
    tasks = {task["task"]: task for task in four_tasks[1]["tasks"]}
    for record in tasks["text-classification"]["variants"][1]["predictions"]:
        assert record["label"] in ("NEGATIVE", "POSITIVE") and 0.5 <= record["score"] <= 1
    for record in tasks["text-generation"]["variants"][1]["predictions"]:
        assert 1 <= len(record["new_token_ids"]) <= SIZES["tiny"].new_tokens
    for record in tasks["summarization"]["variants"][1]["predictions"]:
        assert 2 <= len(record["token_ids"]) <= SIZES["tiny"].new_tokens + 1  # the start token, then new ones
    qa = tasks["question-answering"]
    for (_, context), record in zip(qa["examples"], qa["variants"][1]["predictions"], strict=True):
        assert record["answer"] == context[record["start"]:record["end"]] and record["answer"]


def test_a_broken_attention_is_reported_and_fails_the_run(tmp_path, monkeypatch):
    """Our kernel without the padding mask: the comparison must see it (the rule can fail)."""
    real = kernels.hf.attention.attention
    monkeypatch.setattr(kernels.hf.attention, "attention", lambda *args, attn_mask=None, **kw: real(*args, **kw))
    exit_code, screen = run_command(["--task", "text-classification", "--quick", *ON_DEVICE, "--out", str(tmp_path)])
    (task,) = json.loads((tmp_path / "pipelines.json").read_text())["tasks"]
    triton = task["variants"][2]
    assert exit_code == 1 and not task["agrees"] and not triton["agrees_with_reference"]
    assert triton["mismatches"] and triton["max_logit_difference"] > 1e-3
    assert "text-classification / triton: example" in screen


def test_an_interrupted_run_writes_the_tasks_finished(tmp_path, monkeypatch):
    """Ctrl-C (or gpu_session.sh's `timeout --signal=INT`) during the second task: the first is kept."""
    real = pipelines_command.run_task
    calls = []

    def second_is_interrupted(*args, **kwargs):
        calls.append(args[0].name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipelines_command, "run_task", second_is_interrupted)
    exit_code, screen = run_command(["--task", "text-classification", "--task", "question-answering", "--quick",
                                     *ON_DEVICE, "--out", str(tmp_path)])
    results = json.loads((tmp_path / "pipelines.json").read_text())
    assert exit_code == 130 and results["interrupted"] is True and "interrupted after 1 of 2 tasks" in screen
    assert [task["task"] for task in results["tasks"]] == ["text-classification"]
    assert {row["task"] for row in results["rows"]} == {"text-classification"}


def test_a_saved_model_directory_is_used(tmp_path):
    model, tokenizer = random_model("text-generation", SIZES["tiny"], seed=3)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    exit_code, _ = run_command(["--task", "text-generation", "--model", f"text-generation={tmp_path / 'model'}",
                                "--quick", *ON_DEVICE, "--out", str(tmp_path)])
    (task,) = json.loads((tmp_path / "pipelines.json").read_text())["tasks"]
    assert exit_code == 0 and task["agrees"] and task["model"] == str(tmp_path / "model")
    assert task["variants"][2]["triton_kernel_calls"] > 0


def test_a_model_not_in_the_local_cache_is_one_clear_error(tmp_path):
    exit_code, screen = run_command(["--model", "text-generation=no-such-org/no-such-model", *ON_DEVICE,
                                     "--out", str(tmp_path)])
    assert exit_code == 2
    message = " ".join(screen.split())
    assert "cannot load 'no-such-org/no-such-model' for text-generation" in message
    assert "not in the local Hugging Face cache" in message and "Traceback" not in screen
    assert not (tmp_path / "pipelines.json").exists()


@pytest.mark.parametrize("value", ["no-equals-sign", "translation=./model", "text-generation="])
def test_a_malformed_model_argument_names_the_expected_form(value, capsys):
    with pytest.raises(SystemExit):
        run_command(["--model", value])
    assert "TASK=PATH_OR_ID" in capsys.readouterr().err


# --- the pieces ------------------------------------------------------------------------------------------

def test_continuation_skips_left_padding_and_the_prompt_and_drops_trailing_padding():
    pad = 1
    assert continuation([1, 1, 7, 8, 20, 21, 1, 1], [7, 8], pad) == [20, 21]
    assert continuation([7, 8, 20], [7, 8], pad) == [20]
    with pytest.raises(RuntimeError, match="does not start with its"):
        continuation([1, 9, 8, 20], [7, 8], pad)


def test_a_generation_mismatch_names_the_first_differing_token():
    settings = RunSettings(torch.device("cpu"), torch.float32, max_new_tokens=4, max_length=64)
    same = [{"new_token_ids": [5, 6, 7, 8]}]
    (mismatch,) = TASKS["text-generation"].mismatches(same, [{"new_token_ids": [5, 6, 9, 2]}], settings)
    assert mismatch.example == 0 and "from position 2 on: [9, 2] vs [7, 8]" in str(mismatch)
    assert TASKS["text-generation"].mismatches(same, same, settings) == []


def test_best_span_stays_in_the_context_and_in_order():
    in_context = torch.tensor([False, False, True, True, True, True, False])
    start = torch.tensor([9.0, 0, 0, 1, 5, 0, 9])  # the best starts overall lie outside the context
    end = torch.tensor([0.0, 0, 6, 0, 0, 2, 9])  # the best end in the context (position 2) precedes its best start (4)
    first, last, score = best_span(start, end, in_context)
    assert (first, last) == (4, 5)
    start_p = torch.softmax(start[2:6], 0)[2]
    end_p = torch.softmax(end[2:6], 0)[3]
    assert score == pytest.approx(float(start_p * end_p))
    assert best_span(start, end, in_context, max_answer_tokens=1)[:2] == (2, 2)  # e^0 * e^6 beats e^5 * e^0


def test_tokenizers_train_to_the_same_vocabulary_every_time():
    assert bert_tokenizer().get_vocab() == bert_tokenizer().get_vocab()
    assert byte_bpe_tokenizer(True).get_vocab() == byte_bpe_tokenizer(True).get_vocab()


def test_base_sizes_are_bert_base_and_gpt2_small_and_their_inputs_fit():
    base = SIZES["base"]
    for task, recipe in RECIPES.items():
        tokenizer = recipe.make_tokenizer()
        config = recipe.make_config(base, tokenizer)
        assert (config.hidden_size, config.num_attention_heads) == (768, 12)
        if task == "text-generation":
            longest = max(len(tokenizer(prompt)["input_ids"]) for prompt in task_examples(task, base))
            assert longest + base.new_tokens <= config.n_positions
        lengths = {len(str(example)) for example in task_examples(task, base)}
        assert len(task_examples(task, base)) == base.batch and max(lengths) > 4 * min(lengths)  # heavy padding
