"""The served model gives the same parses and the same next actions with ``SequentialGraphRunner`` as with Rasa's
``DaskGraphRunner``: the NLU graph on every message of the conversation tests, the policy graph on every point of
those conversations where the bot picks its next action. Needs a trained Rasa model (as test_dialogue_live.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("rasa")

from rasa.core.channels.channel import UserMessage  # noqa: E402
from rasa.engine.constants import PLACEHOLDER_MESSAGE, PLACEHOLDER_TRACKER  # noqa: E402
from rasa.engine.exceptions import GraphRunError  # noqa: E402
from rasa.engine.loader import load_predict_graph_runner  # noqa: E402
from rasa.engine.runner.dask import DaskGraphRunner  # noqa: E402
from rasa.engine.storage.local_model_storage import LocalModelStorage  # noqa: E402
from rasa.shared.core.domain import Domain  # noqa: E402
from rasa.shared.core.events import ActionExecuted, UserUttered  # noqa: E402
from rasa.shared.core.trackers import DialogueStateTracker  # noqa: E402
from rasa.shared.core.training_data.story_reader.yaml_story_reader import YAMLStoryReader  # noqa: E402

from bot.graph_runner import SequentialGraphRunner  # noqa: E402
from tests.bot.test_dialogue_live import _model  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def runners(tmp_path_factory):
    model = _model()
    if model is None:
        pytest.skip("needs a trained Rasa model")
    return {cls: load_predict_graph_runner(tmp_path_factory.mktemp(cls.__name__), model, LocalModelStorage, cls)
            for cls in (DaskGraphRunner, SequentialGraphRunner)}


@pytest.fixture(scope="module")
def conversations():
    domain = Domain.load(ROOT / "bot" / "domain.yml")
    steps = []
    for path in sorted((ROOT / "bot" / "tests").glob("*.yml")):
        steps += YAMLStoryReader(domain).read_from_file(path)
    assert len(steps) > 20
    return domain, steps


def _parse(runner_and_metadata, text):
    metadata, runner = runner_and_metadata
    message = UserMessage(text, sender_id="t")
    out = runner.run(inputs={PLACEHOLDER_MESSAGE: [message], PLACEHOLDER_TRACKER: DialogueStateTracker("t", [])},
                     targets=[metadata.nlu_target])[metadata.nlu_target]
    return [m.as_dict(only_output_properties=True) for m in out]


def _predict(runner_and_metadata, tracker):
    metadata, runner = runner_and_metadata
    prediction = runner.run(inputs={PLACEHOLDER_TRACKER: tracker}, targets=[metadata.core_target])[
        metadata.core_target]
    return prediction.policy_name, prediction.probabilities, prediction.events


def test_every_test_message_parses_the_same(runners, conversations):
    _domain, steps = conversations
    texts = {e.text for step in steps for e in step.events if isinstance(e, UserUttered) and e.text}
    texts |= {"我家楼下着火了", "？？？", "你好", "不对，是海淀区", "转人工"}
    assert len(texts) > 30
    dask, sequential = runners[DaskGraphRunner], runners[SequentialGraphRunner]
    for text in sorted(texts):
        assert _parse(sequential, text) == _parse(dask, text), text


def test_every_next_action_is_predicted_the_same(runners, conversations):
    domain, steps = conversations
    dask, sequential = runners[DaskGraphRunner], runners[SequentialGraphRunner]
    checked = 0
    for step in steps:
        events = list(step.events)
        for i, event in enumerate(events):
            if not isinstance(event, ActionExecuted):
                continue
            tracker = DialogueStateTracker.from_events("t", [ActionExecuted("action_listen")] + events[:i],
                                                       domain.slots)
            assert _predict(sequential, tracker) == _predict(dask, tracker), (step.block_name, i)
            checked += 1
    assert checked > 100


@pytest.mark.parametrize("cls", [DaskGraphRunner, SequentialGraphRunner])
def test_an_input_named_like_a_node_is_refused(runners, cls):
    metadata, runner = runners[cls]
    with pytest.raises(GraphRunError, match="clashes with a node name"):
        runner.run(inputs={PLACEHOLDER_MESSAGE: metadata.nlu_target}, targets=[metadata.nlu_target])
