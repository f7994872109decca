"""Rasa custom actions of the 12345 intake bot (rasa_sdk), served in-process by the services app at /webhook.

One module per concern; each is a thin adapter that reads the tracker and calls :mod:`actions.services`, the only
module that touches the domain packages (dispatch, knowledge_base, classifier).
"""

import logging as _logging

# rasa_sdk warns "Skipping validation for `<slot>`" for every extracted slot without a validate_<slot> method; most
# intake slots are fully handled by their extract_<slot> method, so these warnings are noise in the service log.
_logging.getLogger("rasa_sdk.forms").setLevel(_logging.ERROR)
