"""What a returned value makes of a run's final state: Prefect 3's rule, for tasks and flows.

- A State made by hand (``return Failed(message="bad input")``, ``Completed(name="Skipped")``)
  is the run's final state as given: its type, name, message and data.
- A run's state, or a list, tuple or set of states (a flow returning its tasks' futures or
  ``return_state=True`` results; futures are resolved to their states first), is aggregated:
  all completed is COMPLETED ("All states completed."), any cancelled is CANCELLED ("1/3
  states cancelled."), anything else FAILED ("2/3 states failed."). The states are its data,
  so the call returns them, and ``result()`` of a failed aggregate raises the first failure's
  own exception.
- A generator is consumed into a list (it cannot outlive the run); anything else is the
  result of a COMPLETED state.
"""

from __future__ import annotations

import types
from collections import Counter
from typing import Any

from prefect_like.states import FINAL_STATES, Completed, State, StateType


def is_state_collection(value: Any) -> bool:
    return isinstance(value, (list, tuple, set)) and bool(value) and all(isinstance(v, State) for v in value)


def state_from_return(value: Any) -> State:
    """The final state a run's return value gives it (see the module docstring)."""
    if isinstance(value, State) and value.run_id is None:
        return value
    if isinstance(value, State) or is_state_collection(value):
        return aggregate([value] if isinstance(value, State) else list(value), value)
    if isinstance(value, types.GeneratorType):
        value = list(value)
    return Completed(value)


def aggregate(states: list[State], data: Any) -> State:
    types_ = Counter(state.type for state in states)
    total = len(states)
    failed = types_[StateType.FAILED] + types_[StateType.CRASHED]
    if types_[StateType.COMPLETED] == total:
        return State(StateType.COMPLETED, message="All states completed.", data=data)
    if types_[StateType.CANCELLED]:
        return State(StateType.CANCELLED, message=f"{types_[StateType.CANCELLED]}/{total} states cancelled.", data=data)
    if failed:
        message = f"{failed}/{total} states failed."
    else:
        unfinished = sum(state.type not in FINAL_STATES for state in states)
        message = f"{unfinished}/{total} states are not final."
    return State(StateType.FAILED, message=message, data=data)
