"""The Rasa project of the intake bot; a Python package only so that ``bot.channels`` can be imported by Rasa."""
