"""``nlu.normalizer.ChineseTextNormalizer``: the first component of the pipeline (see :mod:`nlu.text`).

Rewrites the message text in place before tokenisation (training examples too, with their entity offsets moved
along) and records what changed in the message attribute ``normalization`` (emoji removed, counts of converted
characters), which is part of the parse result. Intent shortcuts (``/greet``) are left untouched.

Entity offsets reported for a message refer to the normalised text (``parse_data["text"]``); the tracker keeps
the citizen's original text.
"""
from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.nlu.constants import ENTITIES, ENTITY_ATTRIBUTE_END, ENTITY_ATTRIBUTE_START, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.text import normalize, remap_span

logger = logging.getLogger(__name__)

TRACE_ATTRIBUTE = "normalization"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class ChineseTextNormalizer(GraphComponent):
    """Traditional→simplified, full-width→half-width, punctuation, emoji, case and whitespace normalisation."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {"opencc_config": "t2s"}

    def __init__(self, config: Dict[Text, Any]) -> None:
        self._config = config

    @classmethod
    def create(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
               execution_context: ExecutionContext) -> "ChineseTextNormalizer":
        return cls(config)

    @staticmethod
    def required_packages() -> List[Text]:
        return ["opencc"]

    @staticmethod
    def supported_languages():
        return ["zh"]

    def _normalize_message(self, message: Message, training: bool) -> None:
        text = message.get(TEXT)
        if not isinstance(text, str) or not text or text.startswith("/"):
            return
        normalised, trace, index_map = normalize(text, self._config["opencc_config"])
        if normalised == text:
            if not training:
                message.set(TRACE_ATTRIBUTE, trace.as_dict(), add_to_output=True)
            return
        message.set(TEXT, normalised)
        entities = message.get(ENTITIES)
        if training and entities:
            moved = []
            for entity in entities:
                entity = dict(entity)
                start, end = remap_span(index_map, entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END])
                entity[ENTITY_ATTRIBUTE_START], entity[ENTITY_ATTRIBUTE_END] = start, end
                moved.append(entity)
            message.set(ENTITIES, moved)
        if not training:
            message.set(TRACE_ATTRIBUTE, trace.as_dict(), add_to_output=True)

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        for example in training_data.training_examples:
            self._normalize_message(example, training=True)
        return training_data

    def process(self, messages: List[Message]) -> List[Message]:
        for message in messages:
            self._normalize_message(message, training=False)
        return messages
