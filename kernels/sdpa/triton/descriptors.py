"""TMA tensor descriptors for the attention forward on Hopper and Blackwell (sm_90+).

On sm_90 and later a tile can be copied from global to shared memory by the Tensor Memory Accelerator
(TMA, the SASS UTMALDG instruction) from a descriptor of the tensor: one thread issues the copy, no
thread computes addresses, and rows past the tensor's end come back as zeros (stores past it are
dropped). The forward kernel reads Q, K, V and writes O through descriptors when its USE_TMA
constexpr is set (`uses_tensor_descriptors` decides at launch) and through pointers otherwise.

Why descriptors made in the kernel (`tl.make_tensor_descriptor`) and not on the host
(`triton.tools.tensor_descriptor.TensorDescriptor`): a host descriptor fixes its block shape when it
is made, before the autotuner has picked BLOCK_M and BLOCK_N (Triton's recipe patches it in a config
pre_hook); a device descriptor takes its block shape from the kernel's own constexprs, so every tile
the autotuner times, and the compile report records, is described correctly. One 2-D (rows, head dim)
descriptor per (batch, head) also takes any batch and head strides (a (B, N, H, D) layout viewed as
(B, H, N, D), or the slices of a fused QKV projection), and its row count is the sequence length, so
the hardware zero-fills (and clips stores at) the ragged last tile and the padded head-dim columns.
Triton's interpreter runs device descriptors too, so the CPU tests cover this path.

A device descriptor is written by the kernel into a global-memory scratch buffer that Triton asks for
at launch through `triton.set_allocator`. `scratch_allocator` sets an allocator (torch memory on the
call's device) for the launch only, in a copy of the caller's context: an allocator the caller has
set is not replaced.

What a descriptor can describe (`descriptor_compatible`): the last dim contiguous (stride 1), every
other stride and the base address 16-byte aligned, a nonzero row stride, 16- and 32-bit dtypes
(float64 keeps pointers: its dots run on DMMA/FMA, where TMA buys nothing, and it is a test dtype).
Any other input takes the pointer path, as on sm_80.
"""
import contextlib
import contextvars
import functools

import torch
import triton
import triton.language as tl

from kernels.shared.switches import switched

TENSOR_DESCRIPTOR_CAPABILITY = 90  # the compute capability (major x 10 + minor) from which descriptors are taken
# The dtypes the descriptor path takes.
DESCRIPTOR_DTYPES = (torch.float16, torch.bfloat16, torch.float32)
_ALIGNMENT_BYTES = 16

# None: decide by the device's compute capability; True/False: forced (see force_tensor_descriptors).
_forced_path: contextvars.ContextVar[bool | None] = contextvars.ContextVar("forced_tensor_descriptors",
                                                                           default=None)


@triton.jit
def row_tile_descriptor(base, n_rows, stride_row, N_COLS: tl.constexpr, BLOCK_ROWS: tl.constexpr,
                        BLOCK_COLS: tl.constexpr):
    """A descriptor of the (n_rows, N_COLS) matrix at `base` (rows `stride_row` apart, columns
    contiguous) read in (BLOCK_ROWS, BLOCK_COLS) tiles: rows >= n_rows and columns >= N_COLS load as
    zeros and are not stored."""
    return tl.make_tensor_descriptor(base, shape=[n_rows, N_COLS], strides=[stride_row, 1],
                                     block_shape=[BLOCK_ROWS, BLOCK_COLS])


def descriptor_compatible(tensor: torch.Tensor) -> bool:
    """Whether a (B, H, N, D) tensor can be read or written through per-(batch, head) descriptors."""
    if tensor.dtype not in DESCRIPTOR_DTYPES or tensor.stride(-1) != 1 or tensor.stride(-2) == 0:
        return False
    item = tensor.element_size()
    return (tensor.data_ptr() % _ALIGNMENT_BYTES == 0
            and all(stride * item % _ALIGNMENT_BYTES == 0 for stride in tensor.stride()[:-1]))


def uses_tensor_descriptors(*tensors: torch.Tensor) -> bool:
    """USE_TMA for a launch on these tensors: inside a `force_tensor_descriptors` block as it says
    (where the tensors allow it), else on a CUDA device of compute capability 9.0 or more (Hopper,
    Blackwell) when every tensor is `descriptor_compatible`."""
    wanted, device = _forced_path.get(), tensors[0].device
    if wanted is None:
        wanted = device.type == "cuda" and device_capability(device) >= TENSOR_DESCRIPTOR_CAPABILITY
    return wanted and all(descriptor_compatible(tensor) for tensor in tensors)


def tensor_descriptor_switch() -> bool | None:
    """What the innermost `force_tensor_descriptors` block says, None outside any (a launch plan's key)."""
    return _forced_path.get()


def bases_aligned(*tensors: torch.Tensor) -> bool:
    """Whether every tensor starts on a 16-byte boundary, as `descriptor_compatible` also asks (a launch
    plan's key: the other conditions are the tensors' dtypes and strides)."""
    addresses = 0
    for tensor in tensors:  # a loop, not all(...) over a generator: it runs on every launch
        addresses |= tensor.data_ptr()
    return addresses % _ALIGNMENT_BYTES == 0


def force_tensor_descriptors(enabled: bool) -> contextlib.AbstractContextManager:
    """Inside the block the forward takes the descriptor path (enabled, wherever the inputs allow it:
    the interpreter tests, the compile report's sm_90/sm_100 rows) or the pointer path (not enabled:
    the sm_80 rows, a comparison on a Hopper card), whatever the device."""
    return switched(_forced_path, enabled)


@functools.cache
def _cuda_capability(index: int) -> int:
    major, minor = torch.cuda.get_device_capability(index)
    return 10 * major + minor


def device_capability(device: torch.device) -> int:
    """A CUDA device's compute capability as major x 10 + minor (90 for Hopper, 100 for Blackwell)."""
    return _cuda_capability(device.index if device.index is not None else torch.cuda.current_device())


def scratch_allocator(device: torch.device):
    """A context to launch a descriptor-path kernel in: `run(launch)` calls it with Triton's
    allocator set to torch memory on `device`, in a copy of the caller's context."""
    def allocate(size: int, alignment: int, stream: int | None) -> torch.Tensor:
        # torch's CUDA caching allocator starts every block on a 512-byte boundary: any `alignment`
        # Triton asks for (128 for descriptors) holds.
        return torch.empty(size, dtype=torch.int8, device=device)

    context = contextvars.copy_context()
    context.run(triton.set_allocator, allocate)
    return context
