"""Checks of the models' inputs (token ids, attention masks, lengths), so bad input gets an error that
names the argument before any kernel runs."""
import torch

ID_DTYPES = (torch.int32, torch.int64)


def check_token_ids(name: str, ids, vocab_size: int) -> None:
    """(B, N) int32/int64 ids with N >= 1; their range is checked by the embedding."""
    if not isinstance(ids, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of token ids, got {type(ids).__name__}")
    if ids.dtype not in ID_DTYPES:
        raise TypeError(f"{name} must be an int64 or int32 tensor of token ids, got dtype {ids.dtype}")
    if ids.dim() != 2 or ids.size(0) == 0 or ids.size(1) == 0:
        raise ValueError(f"{name} must have shape (batch, seq) with batch, seq >= 1, got {tuple(ids.shape)}")


def key_padding(name: str, mask, batch: int, n_keys: int, device) -> torch.Tensor | None:
    """A (B, Nk) attention mask, 1/True = real token (Hugging Face's convention), as bool, or None."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor or None, got {type(mask).__name__}")
    if mask.is_floating_point() or mask.is_complex():
        raise TypeError(f"{name} must be a bool or integer tensor (1/True = real token), got dtype {mask.dtype}")
    if tuple(mask.shape) != (batch, n_keys):
        raise ValueError(f"{name} must have shape (batch, keys) = ({batch}, {n_keys}), got {tuple(mask.shape)}")
    if mask.device != torch.device(device):
        raise ValueError(f"{name} is on {mask.device} but the model is on {device}")
    return mask.bool()


def check_length(what: str, length: int, max_seq_len: int) -> None:
    if length > max_seq_len:
        raise ValueError(f"{what} is {length} positions, more than the model's max_seq_len={max_seq_len}")


def positions_from_padding(padding: torch.Tensor, n_new: int) -> torch.Tensor:
    """Positions (B, n_new) of the last `n_new` tokens, counting real tokens only: left padding
    shifts a row's positions so its first real token is at 0 (padded tokens get 0 too)."""
    return (padding.long().cumsum(-1) - 1).clamp(min=0)[:, -n_new:]


def last_real_token(padding: torch.Tensor | None, length: int, device) -> torch.Tensor:
    """Each row's index (B,) of its last real token, whatever side the padding is on; every row needs one."""
    if padding is None:
        return torch.tensor([length - 1], device=device)
    real_count = padding.long().cumsum(-1)  # (B, N)
    if not bool(real_count[:, -1].all()):
        empty = (real_count[:, -1] == 0).nonzero().flatten().tolist()
        raise ValueError(f"attention_mask rows {empty} have no real token (1/True): each row needs at least one")
    return real_count.argmax(-1)  # the first index where the count reaches its row's total
