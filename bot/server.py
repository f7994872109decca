"""Start the Rasa server with the project's run-time fixes: ``python -m bot.server run …`` takes exactly the arguments
of ``rasa`` (``scripts/system.py`` starts the server this way).

The fixes, each found with a profile of a Rasa worker under the 20-citizen load (``benchmarks/README.md``):

- models are served by ``bot.graph_runner.SequentialGraphRunner`` instead of dask;
- action calls keep their connections open and send the domain once (``bot.action_client``);
- action responses are validated without rebuilding the schema's validator (below);
- tracker copies, applied events and the policies' dialogue states are computed incrementally
  (``bot.tracker_replay``).

Validation: Rasa 3.6 checks every action server response with ``jsonschema.validate(result, schema)``, which first
re-checks the schema itself and builds a new validator for a large schema (one ``anyOf`` branch per event type) on
every call - under 20 concurrent conversations that was about a third of the Rasa process's CPU time (py-spy;
``benchmarks/README.md``). :func:`install_cached_action_validation` validates against the same schema with
validators built once; a response that is invalid still raises ``jsonschema.ValidationError`` with Rasa's message.

Even with one validator, each event was tried against all 23 branches of the schema's ``oneOf`` (one per event type,
each fixed by ``"event": {"const": ...}``) - ~10 % of a Rasa worker's CPU under load after the other fixes. Since
the branches' constants differ, at most one branch can match an event: it is valid exactly when the branch of its
own type accepts it. So each event is checked against that branch alone (:class:`ActionResponseValidator`); when
anything fails, the full schema's validator runs and raises the error Rasa would have raised.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Text


class ActionResponseValidator:
    """Rasa's action-response schema, checked per event against the ``oneOf`` branch of the event's own type."""

    def __init__(self, schema: Dict[Text, Any]) -> None:
        from jsonschema import validators

        validator_class = validators.validator_for(schema)
        validator_class.check_schema(schema)
        self.full = validator_class(schema)
        items = schema["properties"]["events"]["items"]
        common = {k: v for k, v in items.items() if k != "oneOf"}
        self.by_event = {branch["properties"]["event"]["const"]: validator_class({**common, "allOf": [branch]})
                         for branch in items["oneOf"]}
        outer = {**schema, "properties": {**schema["properties"], "events": {"type": "array"}}}
        self.outer = validator_class(outer)

    def is_valid(self, result: Any) -> bool:
        if not self.outer.is_valid(result):
            return False
        for event in result.get("events") or []:
            validator = self.by_event.get(event.get("event")) if isinstance(event, dict) else None
            if validator is None or not validator.is_valid(event):
                return False
        return True

    def best_error(self, result: Any) -> Any:
        """What ``jsonschema.validate`` raises for ``result`` (None when it is valid)."""
        from jsonschema import exceptions

        return None if self.is_valid(result) else exceptions.best_match(self.full.iter_errors(result))


def install_cached_action_validation() -> None:
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    validator = ActionResponseValidator(RemoteAction.action_response_format_spec())

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        error = validator.best_error(result)
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from the Action "
            f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result


def install_run_time_fixes() -> None:
    from bot.action_client import install_domain_digest, install_kept_alive_sessions
    from bot.graph_runner import install_sequential_graph_runner
    from bot.tracker_replay import install_incremental_replays

    install_cached_action_validation()
    install_sequential_graph_runner()
    install_kept_alive_sessions()
    install_domain_digest()
    install_incremental_replays()


def main() -> None:
    install_run_time_fixes()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
