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
