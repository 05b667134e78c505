"""One training step of a Hugging Face causal LM compared with the same step of a reference copy (eager)."""
import torch

import kernels


def assert_padded_training_step_matches(reference: torch.nn.Module, model: torch.nn.Module, inputs: dict,
                                        backend: str) -> None:
    """`model` (its attention on `backend`) and `reference`, same weights, give the same loss and parameter
    gradients on a left-padded batch (`input_ids`, `attention_mask`).

    A row's first real token is predicted from a padding position, whose output is undefined (eager
    averages over masked keys, the kernels give zeros): only tokens with a real token before them count."""
    real = inputs["attention_mask"].bool()
    predicted = real & torch.nn.functional.pad(real[:, :-1], (1, 0))
    labels = inputs["input_ids"].masked_fill(~predicted, -100)
    steps = {}
    for which, each in (("reference", reference), ("model", model)):
        each.train().zero_grad()
        with kernels.use_backend(backend):
            loss = each(**inputs, labels=labels).loss
        loss.backward()
        steps[which] = loss.detach(), {n: p.grad for n, p in each.named_parameters() if p.grad is not None}
    torch.testing.assert_close(steps["model"][0], steps["reference"][0], atol=1e-5, rtol=1e-5)
    assert steps["model"][1].keys() == steps["reference"][1].keys()
    for parameter, gradient in steps["reference"][1].items():
        torch.testing.assert_close(steps["model"][1][parameter], gradient, atol=1e-5, rtol=1e-4,
                                   msg=lambda m, parameter=parameter: f"{parameter}: {m}")
