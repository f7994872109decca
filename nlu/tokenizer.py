"""``nlu.tokenizer.GazetteerJiebaTokenizer``: Rasa's JiebaTokenizer with a user dictionary generated at train time.

The dictionary holds every Beijing place surface form of the gazetteer (districts, streets/townships, communities,
landmarks and their aliases, normalised like the messages) and the hotline's domain terms in
``nlu/data/domain_terms.txt``, so that ``望京西园三区``, ``回龙观``, ``油烟``, ``居住证`` or ``转人工`` stay one token.
It is written into the model's storage (``userdict.txt``) and loaded into jieba whenever the model is loaded;
extra dictionaries can still be given with ``dictionary_path`` (a folder, as for JiebaTokenizer).
"""
from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Text

from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.tokenizers.jieba_tokenizer import JiebaTokenizer
from rasa.shared.nlu.training_data.training_data import TrainingData

from nlu.gazetteer import BeijingGazetteerExtractor
from nlu.text import normalize

logger = logging.getLogger(__name__)

DOMAIN_TERMS = Path(__file__).resolve().parent / "data" / "domain_terms.txt"
USERDICT = "userdict.txt"
PLACE_FREQ = 20000
TERM_FREQ = 10000


def build_user_dictionary(config: Dict[Text, Any]) -> str:
    """jieba user-dictionary text: ``word freq tag`` per line."""
    gazetteer = BeijingGazetteerExtractor.build(config)
    lines: List[str] = []
    seen = set()
    for surface in gazetteer.vocabulary():
        if " " in surface or surface in seen:
            continue
        seen.add(surface)
        lines.append(f"{surface} {PLACE_FREQ} ns")
    terms_file = Path(config.get("domain_terms") or DOMAIN_TERMS)
    if terms_file.exists():
        for raw in terms_file.read_text(encoding="utf-8").splitlines():
            word = raw.split("#", 1)[0].strip()
            word = normalize(word)[0] if word else word
            if word and " " not in word and word not in seen:
                seen.add(word)
                lines.append(f"{word} {TERM_FREQ} n")
    return "\n".join(lines) + "\n"


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_TOKENIZER, is_trainable=True)
class GazetteerJiebaTokenizer(JiebaTokenizer):
    """JiebaTokenizer whose user dictionary is generated from the gazetteer data and domain terms."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            **JiebaTokenizer.get_default_config(),
            **BeijingGazetteerExtractor.get_default_config(),
            "domain_terms": None,
        }

    @classmethod
    def fingerprint_addon(cls, config: Dict[Text, Any]) -> Optional[str]:
        """The user dictionary's content: Rasa's training cache otherwise reuses a tokenizer (and everything
        downstream of it) trained on an older ``domain_terms.txt`` or gazetteer, since only the config is
        fingerprinted."""
        return hashlib.sha256(build_user_dictionary(config).encode("utf-8")).hexdigest()

    def train(self, training_data: TrainingData) -> Resource:
        text = build_user_dictionary(self._config)
        with self._model_storage.write_to(self._resource) as directory:
            (directory / USERDICT).write_text(text, encoding="utf-8")
            if self._config.get("dictionary_path"):
                self._copy_files_dir_to_dir(self._config["dictionary_path"], str(directory))
            self._load_custom_dictionary(str(directory))
        logger.info("jieba user dictionary: %d entries", text.count("\n"))
        return self._resource

    @classmethod
    def load(cls, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource,
             execution_context: ExecutionContext, **kwargs: Any) -> "GazetteerJiebaTokenizer":
        try:
            with model_storage.read_from(resource) as directory:
                cls._load_custom_dictionary(str(directory))
        except ValueError:
            logger.debug("no user dictionary stored for %s", resource.name)
        return cls(config, model_storage, resource)

