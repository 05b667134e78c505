"""Input checks for the positional-encoding and sinusoidal-embedding API: bad input gets an error
naming the argument, never a Triton crash or a silently wrong answer."""
import torch

from kernels.positional.limits import MAX_POSITION
from kernels.shared.checks import KERNEL_DTYPES, check_finite_float, check_kernel_dtype, check_probability

INDEX_DTYPES = (torch.int32, torch.int64)


def _check_float_tensor(name: str, value, rank: int, shape_words: str) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != rank:
        raise ValueError(f"{name} must have rank {rank} {shape_words}, got shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")


def _check_index_tensor(name: str, value, shape_words: str, device: torch.device) -> None:
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dtype not in INDEX_DTYPES:
        raise TypeError(f"{name} must be an int32 or int64 tensor, got dtype {value.dtype}")
    if value.dim() != 2:
        raise ValueError(f"{name} must have rank 2 {shape_words}, got shape {tuple(value.shape)}")
    if value.device != device:
        raise ValueError(f"{name} is on {value.device} but the input is on {device}")


def _check_positions(position_offset, position_ids, batch: int, seq_len: int, device: torch.device) -> None:
    if isinstance(position_offset, bool) or not isinstance(position_offset, int) or position_offset < 0:
        raise ValueError(f"position_offset must be a non-negative int, got {position_offset!r}")
    if position_ids is None:
        return
    if position_offset != 0:
        raise ValueError("pass position_offset or position_ids, not both: add the offset to position_ids")
    _check_index_tensor("position_ids", position_ids, "(batch, seq)", device)
    if position_ids.size(1) != seq_len or position_ids.size(0) not in (1, batch):
        raise ValueError(
            f"position_ids must have shape ({batch}, {seq_len}) or (1, {seq_len}) (batch, seq), "
            f"got {tuple(position_ids.shape)}"
        )


def check_encoding_inputs(x, position_offset, position_ids, scale, dropout_p, inplace) -> None:
    """Checks shared by every backend of add_positional_encoding."""
    _check_float_tensor("x", x, 3, "(batch, seq, d_model)")
    _check_positions(position_offset, position_ids, x.size(0), x.size(1), x.device)
    check_finite_float("scale", scale)
    check_probability("dropout_p", dropout_p)
    if not isinstance(inplace, bool):
        raise TypeError(f"inplace must be a bool, got {type(inplace).__name__}")
    if inplace and any(stride == 0 and size > 1 for stride, size in zip(x.stride(), x.shape)):
        raise ValueError(f"inplace=True needs x without broadcast (stride 0) dims, got strides {x.stride()}")


def check_embedding_inputs(token_ids, weight, position_offset, position_ids, scale, dropout_p, padding_idx) -> None:
    """Checks shared by every backend of sinusoidal_embedding; scale None means sqrt(d_model)."""
    _check_float_tensor("weight", weight, 2, "(vocab_size, d_model)")
    _check_index_tensor("token_ids", token_ids, "(batch, seq)", weight.device)
    _check_positions(position_offset, position_ids, token_ids.size(0), token_ids.size(1), weight.device)
    check_finite_float("scale", 1.0 if scale is None else scale)
    check_probability("dropout_p", dropout_p)
    vocab_size = weight.size(0)
    if padding_idx is not None and (
        isinstance(padding_idx, bool) or not isinstance(padding_idx, int) or not 0 <= padding_idx < vocab_size
    ):
        raise ValueError(f"padding_idx must be None or an int in [0, {vocab_size}), got {padding_idx!r}")
    # Checking ids on a GPU would cost a device sync on every call: the kernel reads no row for an
    # out-of-range id and writes NaN instead (see kernels/positional/triton/encoding.py).
    # Under torch.compile the check is skipped too: reading the ids is data-dependent (a graph break).
    if token_ids.device.type == "cpu" and token_ids.numel() > 0 and not torch.compiler.is_compiling():
        low, high = token_ids.min().item(), token_ids.max().item()
        if low < 0 or high >= vocab_size:
            raise IndexError(f"token_ids must lie in [0, vocab_size={vocab_size}), got values in [{low}, {high}]")


def check_encoding_kernel_limits(dtype: torch.dtype, position_offset: int, seq_len: int) -> None:
    """What the Triton positional-encoding kernel supports beyond the checks every backend makes."""
    check_kernel_dtype(dtype, KERNEL_DTYPES, "input")
    if position_offset + seq_len > MAX_POSITION:
        raise ValueError(
            f"position_offset + seq_len = {position_offset + seq_len} exceeds 2**24 = {MAX_POSITION}: "
            "the triton backend computes positions in float32, which stops representing every integer there"
        )
