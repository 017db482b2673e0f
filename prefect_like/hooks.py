"""State hooks, as Prefect has them: hook options checked the same way for tasks and flows, and
the decorators (``@my_task.on_failure``) and lists (``my_flow.on_failure_hooks``) both share.

A hook is called as ``hook(task, task_run, state)`` or ``hook(flow, flow_run, state)``; the
engines call them (``engine/hooks.py``), this module only holds them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Hooks = tuple[Callable[..., Any], ...]


def check_hooks(owner: str, name: str, hooks: Any) -> Hooks:
    """``hooks`` as a tuple, or Prefect's TypeError for anything but an iterable of callables."""
    example = f"@{owner}({name}=[hook1, hook2])\ndef my_{owner}():\n\tpass"
    if hooks is None:
        return ()
    try:
        hooks = tuple(hooks)
    except TypeError:
        raise TypeError(
            f"Expected iterable for {name!r}; got {type(hooks).__name__} instead. Please provide a list of "
            f"hooks to {name!r}:\n\n{example}"
        ) from None
    for hook in hooks:
        if not callable(hook):
            raise TypeError(
                f"Expected callables in {name!r}; got {type(hook).__name__} instead. Please provide a list of "
                f"hooks to {name!r}:\n\n{example}"
            )
    return hooks


class StateHooks:
    """The hooks tasks and flows both have. ``options`` holds them; ``_add_hook`` makes new
    options with one more."""

    options: Any

    def _add_hook(self, name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        raise NotImplementedError

    def on_completion(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook called as ``fn(task_or_flow, run, state)`` when a run completes."""
        return self._add_hook("on_completion", fn)

    def on_failure(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook called as ``fn(task_or_flow, run, state)`` when a run fails (after its retries)."""
        return self._add_hook("on_failure", fn)

    def on_running(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """Add a hook called as ``fn(task_or_flow, run, state)`` when a run (or a retry of it) starts."""
        return self._add_hook("on_running", fn)

    @property
    def on_completion_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_completion)

    @property
    def on_failure_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_failure)

    @property
    def on_running_hooks(self) -> list[Callable[..., Any]]:
        return list(self.options.on_running)
