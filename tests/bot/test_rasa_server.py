"""bot/server.py: the Rasa server's action-response validation, made fast, still accepts and refuses what Rasa's did."""
from __future__ import annotations

import pytest

pytest.importorskip("rasa")

from jsonschema import ValidationError  # noqa: E402
from rasa.core.actions.action import RemoteAction  # noqa: E402

from bot.server import install_cached_action_validation  # noqa: E402

VALID = {"events": [{"event": "slot", "name": "district", "value": "海淀区", "timestamp": None}],
         "responses": [{"text": "好的，已为您登记。", "buttons": [{"title": "确认提交", "payload": "/affirm"}]}]}
INVALID = {"events": [{"event": "slot", "value": "海淀区"}], "responses": []}  # a slot event without its name


@pytest.fixture(scope="module")
def action():
    original = RemoteAction._validate_action_result
    install_cached_action_validation()
    yield RemoteAction("action_submit_work_order", None)
    RemoteAction._validate_action_result = original


def test_valid_action_responses_pass(action):
    assert action._validate_action_result(VALID) is True
    assert action._validate_action_result({"events": [], "responses": []}) is True


def test_an_invalid_response_is_refused_with_rasas_message(action):
    with pytest.raises(ValidationError) as info:
        action._validate_action_result(INVALID)
    assert "Failed to validate Action server response" in info.value.message


def _full_schema_says(result) -> bool:
    from jsonschema import validators

    schema = RemoteAction.action_response_format_spec()
    return validators.validator_for(schema)(schema).is_valid(result)


@pytest.mark.parametrize("result", [
    VALID,
    INVALID,
    {"events": [{"event": "slot", "name": "phone", "value": None}, {"event": "active_loop", "name": None},
                {"event": "followup", "name": "action_listen"}, {"event": "bot", "text": "好的"}], "responses": []},
    {"events": [{"event": "no_such_event"}], "responses": []},           # an unknown event type
    {"events": [{"name": "district", "value": "海淀区"}], "responses": []},  # no event type at all
    {"events": ["slot"], "responses": []},                                # not an object
    {"events": {"event": "slot"}, "responses": []},                        # not a list
    {"events": [{"event": "slot", "name": "district", "value": "海淀区", "timestamp": "yesterday"}]},
    {"events": [{"event": "action", "name": "action_listen", "policy": None, "confidence": "high"}]},
    {"events": [{"event": "reminder", "intent": "callback", "date_time": "2026-12-08T10:00:00", "name": "r1",
                 "kill_on_user_msg": True}]},
    {"events": [], "responses": [{"text": 42}]},
])
def test_the_per_event_check_accepts_and_refuses_exactly_what_the_full_schema_does(action, result):
    from bot.server import ActionResponseValidator

    validator = ActionResponseValidator(RemoteAction.action_response_format_spec())
    assert validator.is_valid(result) is _full_schema_says(result)
    if _full_schema_says(result):
        assert action._validate_action_result(result) is True
    else:
        with pytest.raises(ValidationError):
            action._validate_action_result(result)
