"""`triton.autotune` and `triton.heuristics` with less host time per launch.

Triton's layers rebuild dicts of every argument on each call (the autotuner three, plus a `hasattr`
and a `str(dtype)` per argument for its cache key; the heuristics one dict per heuristic): with the
~60 arguments of our attention kernels that was about 30 us of every launch
(`python -m benchmarks overhead`, level "kernel call"). These subclasses keep Triton's behaviour
(pruning, timing, caches, the heuristics' order) and only change how a launch finds what is already
known:

- `LaunchKeyedAutotuner` remembers, per launch key, the config Triton's own `run` chose. A launch key
  is the tuning key's argument values and the dtypes of the pointer arguments, all read by position.
  Triton's key holds the dtype of every argument that has one; ours holds the same because our kernels
  name every tensor argument `*_ptr`, which a launch with a key not seen yet (the one that goes
  through Triton's `run`) checks. So a remembered config is the one Triton would pick.
- `LazyHeuristics` hands its heuristics a read-only view of the named arguments that looks a name up
  where it is (a position or a keyword) instead of a dict of every argument per heuristic.
"""
from collections.abc import Mapping

import torch
from triton import Config
from triton.runtime.autotuner import Autotuner, Heuristics


class _ArgumentNames(list):
    """A kernel's argument names as Triton's autotuner keeps them (a list), tested for membership in a
    set: its `run` tests every argument of a call against these names, which as list scans cost about
    16 us a call."""

    def __init__(self, names):
        super().__init__(names)
        self._set = frozenset(names)

    def __contains__(self, name) -> bool:
        return name in self._set


class LaunchKeyedAutotuner(Autotuner):
    """See the module docstring."""

    def __init__(self, fn, *, configs, key, prune_configs_by):
        super().__init__(fn, fn.arg_names, configs, key, reset_to_zero=None, restore_value=None,
                         prune_configs_by=prune_configs_by)
        self.arg_names = _ArgumentNames(self.arg_names)
        self._key_positions = tuple((self.arg_names.index(name), name) for name in key)
        self._pointer_positions = tuple((position, name) for position, name in enumerate(self.arg_names)
                                        if name.endswith("_ptr"))
        self.launch_configs: dict[tuple, tuple[Config, dict]] = {}  # launch key -> (config, its kwargs)

    def launch_key(self, args: tuple, kwargs: dict) -> tuple:
        given = len(args)
        values = [args[position] if position < given else kwargs.get(name, name)
                  for position, name in self._key_positions]
        values += [getattr(args[position] if position < given else kwargs.get(name), "dtype", None)
                   for position, name in self._pointer_positions]
        return tuple(values)

    def _check_tensors_are_pointers(self, args: tuple, kwargs: dict) -> None:
        named = {**dict(zip(self.arg_names, args)), **kwargs}
        stray = [name for name, value in named.items() if isinstance(value, torch.Tensor) and not name.endswith("_ptr")]
        if stray:
            raise TypeError(f"{self.base_fn.__name__}: tensor arguments {stray} are not named *_ptr, so the "
                            "launch key (kernels/shared/triton/launch_tuning.py) would miss their dtypes")

    def run(self, *args, **kwargs):
        launch_key = self.launch_key(args, kwargs)
        remembered = self.launch_configs.get(launch_key)
        if remembered is None:
            self._check_tensors_are_pointers(args, kwargs)
            result = super().run(*args, **kwargs)
            if self.best_config.pre_hook is None:  # a config with a hook keeps Triton's path, which calls it
                self.launch_configs[launch_key] = (self.best_config, self.best_config.all_kwargs())
            return result
        self.best_config, config_kwargs = remembered
        return self.fn.run(*args, **kwargs, **config_kwargs)


def autotune(*, configs, key, prune_configs_by):
    """`triton.autotune(configs=, key=, prune_configs_by=)`, made a `LaunchKeyedAutotuner`."""
    def decorate(fn):
        return LaunchKeyedAutotuner(fn, configs=configs, key=key, prune_configs_by=prune_configs_by)
    return decorate


class _NamedArguments(Mapping):
    """A launch's arguments by name, read where they are; the values heuristics set are added as they go."""

    def __init__(self, positions: dict[str, int], args: tuple, kwargs: dict):
        self._positions, self._args, self._kwargs = positions, args, kwargs

    def __getitem__(self, name):
        if name in self._kwargs:
            return self._kwargs[name]
        position = self._positions[name]
        if position >= len(self._args):
            raise KeyError(name)
        return self._args[position]

    def __iter__(self):
        return iter([*(name for name, position in self._positions.items() if position < len(self._args)),
                     *self._kwargs])

    def __len__(self) -> int:
        return sum(1 for _ in self)


class LazyHeuristics(Heuristics):
    """See the module docstring."""

    def __init__(self, fn, arg_names, values):
        super().__init__(fn, arg_names, values)
        self._positions = {name: position for position, name in enumerate(arg_names)}

    def run(self, *args, **kwargs):
        named = _NamedArguments(self._positions, args, kwargs)  # reads kwargs, which the loop extends
        for name, rule in self.values.items():  # in order: a rule sees the values the earlier ones set
            kwargs[name] = rule(named)
        return self.fn.run(*args, **kwargs)


def heuristics(values: dict):
    """`triton.heuristics(values)`, made a `LazyHeuristics`."""
    def decorate(fn):
        return LazyHeuristics(fn, fn.arg_names, values)
    return decorate
