"""Start the Rasa server with the project's run-time fixes: ``python -m bot.server run …`` takes exactly the arguments
of ``rasa`` (``scripts/system.py`` starts the server this way).

The one fix: Rasa 3.6 checks every action server response with ``jsonschema.validate(result, schema)``, which first
re-checks the schema itself and builds a new validator for a large schema (one ``anyOf`` branch per event type) on
every call - under 20 concurrent conversations that was about a third of the Rasa process's CPU time (py-spy;
``benchmarks/README.md``). :func:`install_cached_action_validation` validates against the same schema with one
validator built once; a response that is invalid still raises ``jsonschema.ValidationError`` with Rasa's message.
"""
from __future__ import annotations

import sys
from typing import Any, Dict, Text


def install_cached_action_validation() -> None:
    from jsonschema import exceptions, validators
    from rasa.core.actions.action import RemoteAction
    from rasa.shared.constants import DOCS_BASE_URL

    schema = RemoteAction.action_response_format_spec()
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def _validate_action_result(self: RemoteAction, result: Dict[Text, Any]) -> bool:
        error = exceptions.best_match(validator.iter_errors(result))  # what jsonschema.validate raises
        if error is None:
            return True
        error.message += (
            ". Failed to validate Action server response from API, make sure your response from the Action "
            f"endpoint is valid. For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise error

    RemoteAction._validate_action_result = _validate_action_result


def main() -> None:
    install_cached_action_validation()
    from rasa.__main__ import main as rasa_main

    sys.argv[0] = "rasa"
    rasa_main()


if __name__ == "__main__":
    main()
