"""Rasa custom actions of the 12345 intake bot (rasa_sdk), served in-process by the services app at /webhook.

One module per concern; each is a thin adapter that reads the tracker and calls :mod:`actions.services`, the only
module that touches the domain packages (dispatch, knowledge_base, classifier).
"""
