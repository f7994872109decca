"""``nlu.pattern_extractor.PatternEntityExtractor``: phone numbers, ID-card numbers (masked), work-order numbers and
dates/times from :mod:`nlu.patterns`, as Rasa entities.

ID-card numbers are emitted only as ``id_number`` entities with a masked value, so that actions can warn the citizen
and never store the number; no slot is mapped from them.
"""
from __future__ import annotations

from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.extractors.extractor import EntityExtractorMixin
from rasa.shared.nlu.constants import ENTITIES, TEXT
from rasa.shared.nlu.training_data.message import Message

from nlu.patterns import find_patterns


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.ENTITY_EXTRACTOR, is_trainable=False)
class PatternEntityExtractor(GraphComponent, EntityExtractorMixin):
    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"entities": ["phone_number", "id_number", "work_order_number", "date_time"]}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "PatternEntityExtractor":
        return cls(config)

    def process(self, messages: List[Message]) -> List[Message]:
        wanted = set(self._config["entities"])
        for message in messages:
            text = message.get(TEXT)
            if not text or text.startswith("/"):
                continue
            found = [e for e in find_patterns(text) if e["entity"] in wanted]
            if found:
                found = self.add_extractor_name(found)
                message.set(ENTITIES, message.get(ENTITIES, []) + found, add_to_output=True)
        return messages
